"""Admin for payouts (maker-checker): one staff user requests, a different one approves and sends."""

from django import forms
from django.contrib import admin, messages

from donor.phone_numbers import mask_msisdn
from payments.models import Payout
from payments.services.payouts import (
    PayoutRefused,
    payout_approve,
    payout_cancel,
    payout_check,
    payout_request,
    payout_resolve,
)


class PayoutRequestForm(forms.ModelForm):
    class Meta:
        model = Payout
        fields = ["patient", "amount"]

    def clean(self):
        cleaned = super().clean()
        patient, amount = cleaned.get("patient"), cleaned.get("amount")
        if patient is not None and amount is not None:
            try:
                payout_check(patient=patient, amount=amount, requested_by=self.requested_by)
            except PayoutRefused as refused:
                raise forms.ValidationError(refused.message) from refused
        return cleaned


@admin.register(Payout)
class PayoutAdmin(admin.ModelAdmin):
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
    list_filter = ["status", "needs_review", "currency"]
    search_fields = ["reference", "conversation_id", "receipt", "patient__code"]
    list_select_related = ["patient", "treatment_partner", "requested_by", "approved_by"]
    actions = ["approve_and_send", "cancel_request", "resolve_as_failed"]

    # Admin powers are permissions (checked again in the services): see payments.models.Payout.Meta.
    def has_approve_permission(self, request) -> bool:
        return request.user.has_perm("payments.approve_payout")

    def has_resolve_permission(self, request) -> bool:
        return request.user.has_perm("payments.resolve_payout")

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = PayoutRequestForm
        form = super().get_form(request, obj, **kwargs)
        form.requested_by = request.user
        return form

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["patient", "amount"]
        return [f.name for f in Payout._meta.fields if f.name not in ("id", "msisdn")] + ["masked_msisdn"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def save_model(self, request, obj, form, change):
        if change:
            return  # a payout is never edited; its state moves through approval and callbacks only
        created = payout_request(
            patient=form.cleaned_data["patient"], amount=form.cleaned_data["amount"], requested_by=request.user
        )
        obj.pk = created.pk
        obj.refresh_from_db()

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # evidence: a request moves through approval and results only, never an edit

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Partner wallet")
    def masked_msisdn(self, obj: Payout) -> str:
        return mask_msisdn(obj.msisdn)

    @admin.action(description="Approve and send (a different staff user than the requester)", permissions=["approve"])
    def approve_and_send(self, request, queryset):
        for payout in queryset:
            try:
                sent = payout_approve(payout_id=payout.pk, approved_by=request.user)
            except PayoutRefused as refused:
                self.message_user(request, f"{payout.reference}: {refused.message}", messages.ERROR)
                continue
            level = messages.SUCCESS if sent.status == Payout.Status.SENT else messages.WARNING
            self.message_user(request, f"{sent.reference}: {sent.get_status_display()}", level)

    @admin.action(description="Cancel the selected requests (not yet approved)", permissions=["add"])
    def cancel_request(self, request, queryset):
        self._each(request, queryset, lambda p: payout_cancel(payout_id=p.pk, cancelled_by=request.user))

    @admin.action(
        description="Resolve ambiguous as FAILED (checked on the provider's portal: no money left)",
        permissions=["resolve"],
    )
    def resolve_as_failed(self, request, queryset):
        # Marking PAID needs the receipt, so it is done with `payout_resolve(..., paid=True, receipt=...)` from
        # the shell or a later result callback; failing needs none.
        self._each(request, queryset, lambda p: payout_resolve(payout_id=p.pk, paid=False, resolved_by=request.user))

    def _each(self, request, queryset, step) -> None:
        for payout in queryset:
            try:
                done = step(payout)
            except PayoutRefused as refused:
                self.message_user(request, f"{payout.reference}: {refused.message}", messages.ERROR)
                continue
            self.message_user(request, f"{done.reference}: {done.get_status_display()}", messages.SUCCESS)
