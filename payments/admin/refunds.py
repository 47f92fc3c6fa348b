"""Admin for refunds (maker-checker): one staff user requests, a different one approves and sends.

AzamPay has no refund API: its refunds are paid back outside (a mobile-money or bank transfer) and the
checker approves them with that transfer's receipt, which records them as refunded.
"""

from django import forms
from django.contrib import admin, messages

from payments.admin.receipts import with_receipt
from payments.models import Refund
from payments.services.refunds import (
    RefundRefused,
    refund_approve,
    refund_cancel,
    refund_check,
    refund_request,
    refund_resolve,
    refund_supported,
)


class RefundRequestForm(forms.ModelForm):
    class Meta:
        model = Refund
        fields = ["donation", "amount", "reason"]

    def clean(self):
        cleaned = super().clean()
        donation, amount = cleaned.get("donation"), cleaned.get("amount")
        if donation is not None and amount is not None:
            try:
                refund_check(donation=donation, amount=amount, requested_by=self.requested_by)
            except RefundRefused as refused:
                raise forms.ValidationError(refused.message) from refused
        return cleaned


@admin.register(Refund)
class RefundAdmin(admin.ModelAdmin):
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
    list_filter = ["status", "provider", "manual", "needs_review", "currency"]
    search_fields = ["reference", "provider_reference", "receipt", "donation__reference"]
    list_select_related = ["donation", "requested_by", "approved_by"]
    raw_id_fields = ["donation"]
    actions = ["approve_and_send", "approve_manual", "cancel_request", "resolve_as_refunded", "resolve_as_failed"]

    def has_approve_permission(self, request) -> bool:
        return request.user.has_perm("payments.approve_refund")

    def has_resolve_permission(self, request) -> bool:
        return request.user.has_perm("payments.resolve_refund")

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # evidence: a request moves through approval and results only, never an edit

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = RefundRequestForm
        form = super().get_form(request, obj, **kwargs)
        form.requested_by = request.user
        return form

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["donation", "amount", "reason"]
        return [f.name for f in Refund._meta.fields if f.name != "id"] + ["how_it_is_paid"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

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

    def _each(self, request, queryset, step) -> None:
        for refund in queryset:
            try:
                done = step(refund)
            except RefundRefused as refused:
                self.message_user(request, f"{refund.reference}: {refused.message}", messages.ERROR)
                continue
            self.message_user(request, f"{done.reference}: {done.get_status_display()}", messages.SUCCESS)

    @admin.action(description="Approve and send (a different staff user than the requester)", permissions=["approve"])
    def approve_and_send(self, request, queryset):
        self._each(request, queryset, lambda r: refund_approve(refund_id=r.pk, approved_by=request.user))

    @admin.action(description="Approve a refund paid back outside the provider (asks for its receipt)",
                  permissions=["approve"])  # fmt: skip
    def approve_manual(self, request, queryset):
        def step(refund, receipt):
            try:
                done = refund_approve(refund_id=refund.pk, approved_by=request.user, receipt=receipt)
            except RefundRefused as refused:
                return f"{refund.reference}: {refused.message}"
            return f"{done.reference}: {done.get_status_display()}"

        return with_receipt(
            request,
            queryset,
            action="approve_manual",
            title="Approve refunds paid back outside the provider",
            explanation="Give the receipt of the transfer that paid the donor back.",
            submit_label="Approve and record as refunded",
            step=step,
        )

    @admin.action(description="Cancel the selected requests (not yet approved)", permissions=["add"])
    def cancel_request(self, request, queryset):
        self._each(request, queryset, lambda r: refund_cancel(refund_id=r.pk, cancelled_by=request.user))

    @admin.action(
        description="Resolve ambiguous as REFUNDED (asks for the provider's receipt)", permissions=["resolve"]
    )
    def resolve_as_refunded(self, request, queryset):
        def step(refund, receipt):
            try:
                done = refund_resolve(refund_id=refund.pk, refunded=True, resolved_by=request.user, receipt=receipt)
            except RefundRefused as refused:
                return f"{refund.reference}: {refused.message}"
            return f"{done.reference}: {done.get_status_display()}"

        return with_receipt(
            request,
            queryset,
            action="resolve_as_refunded",
            title="Resolve refunds as refunded",
            explanation="Checked on the provider's portal: the money went back. Give its receipt.",
            submit_label="Record as refunded",
            step=step,
        )

    @admin.action(description="Resolve ambiguous as FAILED (checked on the provider's portal: nothing went back)",
                  permissions=["resolve"])  # fmt: skip
    def resolve_as_failed(self, request, queryset):
        self._each(
            request, queryset, lambda r: refund_resolve(refund_id=r.pk, refunded=False, resolved_by=request.user)
        )
