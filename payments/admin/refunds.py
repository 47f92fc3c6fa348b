"""Admin for refunds (maker-checker): one staff user requests, a different one approves and sends.

AzamPay has no refund API: its refunds are paid back outside (a mobile-money or bank transfer) and the
checker approves them with that transfer's receipt, which records them as refunded.
"""

from django.contrib import admin

from payments.admin.money_out import MoneyOutAdmin, MoneyOutRequestForm
from payments.models import Refund
from payments.services.money_out_results import approve
from payments.services.refunds import FLOW, refund_check, refund_request, refund_supported


class RefundRequestForm(MoneyOutRequestForm):
    class Meta:
        model = Refund
        fields = ["donation", "amount", "reason"]

    subject_field = "donation"

    def check(self, subject, amount) -> None:
        refund_check(donation=subject, amount=amount, requested_by=self.requested_by)


@admin.register(Refund)
class RefundAdmin(MoneyOutAdmin):
    flow = FLOW
    request_form = RefundRequestForm
    request_fields = ["donation", "amount", "reason"]
    extra_fields = ["how_it_is_paid", "results_received"]
    list_display = [
        "reference",
        "donation",
        "provider",
        "amount",
        "currency",
        "status",
        "manual",
        "requested_by",
        "approved_by",
        "receipt",
        "needs_review",
        "created_at",
    ]
    list_filter = [*MoneyOutAdmin.list_filter, "manual"]
    search_fields = ["reference", "provider_reference", "receipt", "donation__reference"]
    list_select_related = ["donation", "requested_by", "approved_by"]
    raw_id_fields = ["donation"]
    actions = ["approve_manual", *MoneyOutAdmin.actions]

    @admin.display(description="How it is paid back")
    def how_it_is_paid(self, obj: Refund) -> str:
        if refund_supported(obj.provider):
            return f"Through {obj.provider}'s refund API, once approved."
        return f"{obj.provider} has no refund API: pay the donor back outside it, then approve with the receipt."

    def save_model(self, request, obj, form, change):
        if change:
            return  # a refund is never edited; its state moves through approval and results only
        created = refund_request(
            donation=form.cleaned_data["donation"],
            amount=form.cleaned_data["amount"],
            reason=form.cleaned_data.get("reason", ""),
            requested_by=request.user,
        )
        obj.pk = created.pk
        obj.refresh_from_db()

    @admin.action(
        description="Approve a refund paid back outside the provider (asks for its receipt)", permissions=["approve"]
    )
    def approve_manual(self, request, queryset):
        return self._with_receipt(
            request,
            queryset,
            action="approve_manual",
            title="Approve refunds paid back outside the provider",
            explanation="Give the receipt of the transfer that paid the donor back.",
            label="Approve and record as refunded",
            step=lambda obj, receipt: approve(FLOW, obj.pk, request.user, receipt=receipt),
        )
