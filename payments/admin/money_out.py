"""What the payout and refund admins share: maker-checker actions on the money-out lifecycle, evidence that
is never edited, and the results received for each (held ones included)."""

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from payments.admin.receipts import with_receipt
from payments.models import CallbackEvent
from payments.services import money_out as lifecycle
from payments.services.money_out import MoneyOutRefused
from payments.services.money_out_results import approve


class MoneyOutRequestForm(forms.ModelForm):
    """The maker's form: the service's rules (`check`) shown as a form error before anything is saved."""

    subject_field: str  # what the money comes from: "patient" (payout) or "donation" (refund)

    def check(self, subject, amount) -> None:
        raise NotImplementedError

    def clean(self):
        cleaned = super().clean()
        subject, amount = cleaned.get(self.subject_field), cleaned.get("amount")
        if subject is not None and amount is not None:
            try:
                self.check(subject, amount)
            except MoneyOutRefused as refused:
                raise forms.ValidationError(refused.message) from refused
        return cleaned


class MoneyOutAdmin(admin.ModelAdmin):
    flow: lifecycle.Flow
    request_fields: list[str]
    request_form: type
    list_filter = ["status", "provider", "needs_review", "currency"]
    actions = ["approve_and_send", "cancel_request", "resolve_as_done", "resolve_as_failed", "mark_reviewed"]

    # Admin powers are permissions (checked again in the services): see the model's Meta.
    def has_approve_permission(self, request) -> bool:
        return request.user.has_perm(f"payments.approve_{self.flow.name}")

    def has_resolve_permission(self, request) -> bool:
        return request.user.has_perm(f"payments.resolve_{self.flow.name}")

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # evidence: a request moves through approval and results only, never an edit

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = self.request_form
        form = super().get_form(request, obj, **kwargs)
        form.requested_by = request.user
        return form

    def get_fields(self, request, obj=None):
        if obj is None:
            return self.request_fields
        names = [f.name for f in self.model._meta.fields if f.name not in (*self.hidden_fields, "reference", "status")]
        return ["reference", "status", *names, *self.extra_fields]

    hidden_fields = ("id",)
    extra_fields = ["results_received"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    @admin.display(description="Results received")
    def results_received(self, obj) -> str:
        events = CallbackEvent.objects.filter(provider=obj.provider, our_reference=obj.reference).order_by("pk")
        rows = ((e.pk, e.kind, e.get_status_display(), e.error or "-") for e in events)
        return format_html_join(mark_safe("<br>"), "#{} {}: {} ({})", rows) or "-"

    def _each(self, request, queryset, step) -> None:
        for obj in queryset:
            try:
                done = step(obj)
            except MoneyOutRefused as refused:
                self.message_user(request, f"{obj.reference}: {refused.message}", messages.ERROR)
                continue
            level = messages.WARNING if done.status in (done.Status.AMBIGUOUS, done.Status.FAILED) else messages.SUCCESS
            self.message_user(request, f"{done.reference}: {done.get_status_display()}", level)

    def _with_receipt(self, request, queryset, *, action: str, title: str, explanation: str, label: str, step):
        def run(obj, receipt: str) -> str:
            try:
                done = step(obj, receipt)
            except MoneyOutRefused as refused:
                return f"{obj.reference}: {refused.message}"
            return f"{done.reference}: {done.get_status_display()}"

        return with_receipt(
            request, queryset, action=action, title=title, explanation=explanation, submit_label=label, step=run
        )

    @admin.action(description="Approve and send (a different staff user than the requester)", permissions=["approve"])
    def approve_and_send(self, request, queryset):
        self._each(request, queryset, lambda obj: approve(self.flow, obj.pk, request.user))

    @admin.action(description="Cancel the selected requests (not yet approved)", permissions=["add"])
    def cancel_request(self, request, queryset):
        self._each(request, queryset, lambda obj: lifecycle.cancel(self.flow, obj.pk, request.user))

    @admin.action(
        description="Resolve ambiguous or overdue as DONE (asks for the provider's receipt)", permissions=["resolve"]
    )
    def resolve_as_done(self, request, queryset):
        return self._with_receipt(
            request,
            queryset,
            action="resolve_as_done",
            title=f"Resolve {self.flow.name}s as done",
            explanation="Checked on the provider's portal: the money reached the other side. Give its receipt.",
            label="Record as done",
            step=lambda obj, receipt: lifecycle.resolve(self.flow, obj.pk, done=True, by=request.user, receipt=receipt),
        )

    @admin.action(
        description="Resolve ambiguous or overdue as FAILED (checked on the provider's portal: no money moved)",
        permissions=["resolve"],
    )
    def resolve_as_failed(self, request, queryset):
        self._each(request, queryset, lambda obj: lifecycle.resolve(self.flow, obj.pk, done=False, by=request.user))

    @admin.action(
        description="Mark as reviewed (a late or mismatched result, settled with the provider)", permissions=["resolve"]
    )
    def mark_reviewed(self, request, queryset):
        self._each(
            request,
            queryset.filter(needs_review=True),
            lambda obj: lifecycle.mark_reviewed(self.flow, obj.pk, request.user),
        )
