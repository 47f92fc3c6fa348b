"""Admin for payouts (maker-checker): one staff user requests, a different one approves and sends."""

from django.contrib import admin

from donor.phone_numbers import mask_msisdn
from payments.admin.money_out import MoneyOutAdmin, MoneyOutRequestForm
from payments.admin.payout_destination import payout_destination_html
from payments.models import Payout
from payments.services.payouts import FLOW, payout_check, payout_request


class PayoutRequestForm(MoneyOutRequestForm):
    class Meta:
        model = Payout
        fields = ["patient", "amount"]

    subject_field = "patient"

    def check(self, subject, amount) -> None:
        payout_check(patient=subject, amount=amount, requested_by=self.requested_by)


@admin.register(Payout)
class PayoutAdmin(MoneyOutAdmin):
    flow = FLOW
    request_form = PayoutRequestForm
    request_fields = ["patient", "amount"]
    hidden_fields = ("id", "msisdn")
    extra_fields = ["masked_msisdn", "results_received", "payout_destination"]
    list_display = [
        "reference",
        "patient",
        "treatment_partner",
        "amount",
        "currency",
        "status",
        "masked_msisdn",
        "requested_by",
        "approved_by",
        "receipt",
        "needs_review",
        "created_at",
    ]
    search_fields = ["reference", "provider_reference", "receipt", "patient__code"]
    list_select_related = ["patient", "treatment_partner", "requested_by", "approved_by"]

    def save_model(self, request, obj, form, change):
        if change:
            return  # a payout is never edited; its state moves through approval and results only
        created = payout_request(
            patient=form.cleaned_data["patient"], amount=form.cleaned_data["amount"], requested_by=request.user
        )
        obj.pk = created.pk
        obj.refresh_from_db()

    @admin.display(description="Partner wallet")
    def masked_msisdn(self, obj: Payout) -> str:
        return mask_msisdn(obj.msisdn)

    @admin.display(description="Payout destination (for the checker)")
    def payout_destination(self, obj: Payout) -> str:
        return payout_destination_html(obj)
