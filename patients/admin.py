"""Admin of patients and treatment partners. Where payouts go is not edited here: the destination fields are
read-only, and the form's "new" fields file a PayoutDestinationChange that a second person approves
(patients.destinations). The changes themselves have their own page with approve / reject / cancel."""

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Model
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.timezone import localtime

from patients.destinations import (
    APPROVE_PERMISSION,
    DestinationRefused,
    describe,
    destination_change_approve,
    destination_change_cancel,
    destination_change_check,
    destination_change_reject,
    destination_change_request,
    last_approved,
    partner_destination_values,
)
from patients.models import PARTNER_DESTINATION_FIELDS, Patient, PayoutDestinationChange, TreatmentPartner
from patients.update_admin import UpdateDueFilter  # also registers the treatment updates' admin

APPROVAL_NOTE = (
    "A change here is only a request: it takes effect when another staff user with the "
    '"approve destination change" permission approves it under Payout destination changes.'
)


def _editable_fields(form: forms.ModelForm) -> list[str]:
    """The model fields this form edits: an admin save writes only these, so it never puts back a stale copy
    of a field it does not show (the destination, written by an approval meanwhile; the ledger's totals)."""
    model: type[Model] = form._meta.model
    names = {f.name for f in model._meta.concrete_fields}
    return [name for name in form._meta.fields or () if name in names and name in form.fields]


class _ChangeRequestForm(forms.ModelForm):
    """Shared by both admins: a form whose `new_*` fields become a change request, checked in clean()."""

    requested_by: Any = None  # set by the admin's get_form
    change_reason = forms.CharField(
        required=False, max_length=255, label="Reason for the change", help_text="Shown to the approver."
    )

    def requested_values(self) -> dict[str, Any]:
        raise NotImplementedError

    def target(self) -> dict[str, Any]:
        raise NotImplementedError

    def changes_destination(self) -> bool:
        raise NotImplementedError

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        self.change_values: dict[str, Any] | None = None
        if not self.errors and self.changes_destination():
            try:
                self.change_values = destination_change_check(
                    requested_by=self.requested_by, new=self.requested_values(), **self.target()
                )
            except DestinationRefused as refused:
                raise forms.ValidationError(refused.message) from refused
        return cleaned


class TreatmentPartnerForm(_ChangeRequestForm):
    new_payout_provider = forms.ChoiceField(required=False, label="Payout provider")
    new_payout_msisdn = forms.CharField(
        required=False, max_length=20, label="Payout number", help_text="Full international number, e.g. 254708374149"
    )
    new_payout_account_name = forms.CharField(
        required=False, max_length=200, label="Account name", help_text="As the provider shows it for this number"
    )
    confirm_destination = forms.BooleanField(
        required=False,
        label="Ask a second person to confirm these values",
        help_text="For a destination nobody approved as a second person (set before approvals began, or demo data).",
    )

    class Meta:
        model = TreatmentPartner
        fields = ["name", "country", "city", "members"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.adding = self.instance.pk is None  # before the save gives it one
        self.fields["new_payout_provider"].choices = [("", "—")] + [(code, code) for code in settings.PAYMENT_RAILS]
        for name in PARTNER_DESTINATION_FIELDS:
            self.fields[f"new_{name}"].initial = getattr(self.instance, name)

    def requested_values(self) -> dict[str, Any]:
        return {name: self.cleaned_data.get(f"new_{name}", "") for name in PARTNER_DESTINATION_FIELDS}

    def target(self) -> dict[str, Any]:
        return {"partner": self.instance, "adding": self.adding}

    def changes_destination(self) -> bool:
        changed = any(f"new_{name}" in self.changed_data for name in PARTNER_DESTINATION_FIELDS)
        return changed or bool(self.cleaned_data.get("confirm_destination"))


class PatientForm(_ChangeRequestForm):
    new_treatment_partner = forms.ModelChoiceField(
        queryset=TreatmentPartner.objects.all(), required=False, label="Move to treatment partner"
    )

    class Meta:
        model = Patient
        fields = [
            "code",
            "name",
            "story",
            "condition",
            "treatment",
            "photo_url",
            "photo_consent_at",
            "treatment_partner",
            "currency",
            "funding_goal",
            "status",
            "published",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["new_treatment_partner"].initial = self.instance.treatment_partner_id

    def requested_values(self) -> dict[str, Any]:
        return {"treatment_partner": self.cleaned_data.get("new_treatment_partner")}

    def target(self) -> dict[str, Any]:
        return {"patient": self.instance}

    def changes_destination(self) -> bool:
        # A new patient's first partner is a plain field (see patients.destinations); later moves are requests.
        return self.instance.pk is not None and "new_treatment_partner" in self.changed_data


class _RequestsChanges(admin.ModelAdmin):
    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        form.requested_by = request.user
        return form

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            fields = _editable_fields(form)
            obj.save(update_fields=[*fields, *self.always_saved] if fields else list(self.always_saved))
        else:
            obj.save()
        if form.change_values is None:
            return
        try:
            # Inside the admin's transaction: a new partner and the request for its destination commit together.
            change_row = destination_change_request(
                requested_by=request.user,
                new=form.requested_values(),
                reason=form.cleaned_data.get("change_reason", ""),
                **form.target(),
            )
        except DestinationRefused as refused:  # a concurrent request got there between clean() and now
            self.message_user(request, f"Where payouts go was not changed: {refused.message}", messages.ERROR)
            return
        self.message_user(
            request,
            f"Change #{change_row.pk} requested ({describe(change_row)}). It takes effect once another staff user "
            "approves it under Payout destination changes.",
            messages.WARNING,
        )

    always_saved: tuple[str, ...] = ()


@admin.register(TreatmentPartner)
class TreatmentPartnerAdmin(_RequestsChanges):
    form = TreatmentPartnerForm
    list_display = ["name", "city", "country", "payout_provider", "destination_state"]
    search_fields = ["name", "city"]
    list_filter = ["country", "payout_provider"]
    readonly_fields = ["approved_destination", "pending_change"]
    fieldsets = [
        (None, {"fields": ["name", "country", "city", "members"]}),
        (
            "Payout destination",
            {
                "fields": [
                    "approved_destination",
                    "pending_change",
                    "new_payout_provider",
                    "new_payout_msisdn",
                    "new_payout_account_name",
                    "confirm_destination",
                    "change_reason",
                ],
                "description": APPROVAL_NOTE,
            },
        ),
    ]

    @admin.display(description="Approved destination")
    def approved_destination(self, partner: TreatmentPartner) -> str:
        if partner.pk is None or not partner.payout_provider:
            return "None yet: payouts to this partner are refused until a destination is approved."
        approval = last_approved(partner.pk)
        values = partner_destination_values(partner)
        by = (
            f"requested by {approval.requested_by}, approved by {approval.decided_by} "
            f"on {localtime(approval.decided_at):%Y-%m-%d}"
            if approval and approval.requested_by_id
            else (approval.note if approval else "never approved")
        )
        return format_html(
            "{} {} {} <br><small>{}</small>",
            values["payout_provider"],
            values["payout_msisdn"],
            values["payout_account_name"],
            by,
        )

    @admin.display(description="Pending change")
    def pending_change(self, partner: TreatmentPartner) -> str:
        return _pending_html(partner.destination_changes.all() if partner.pk else None)

    @admin.display(description="Destination")
    def destination_state(self, partner: TreatmentPartner) -> str:
        if partner.destination_changes.filter(status=PayoutDestinationChange.Status.REQUESTED).exists():
            return "change pending"
        return "approved" if partner.payout_provider else "none"


@admin.register(Patient)
class PatientAdmin(_RequestsChanges):
    form = PatientForm
    list_display = [
        "code",
        "name",
        "condition",
        "currency",
        "funding_goal",
        "funding_received",
        "progress",
        "status",
        "published",
    ]
    list_filter = [UpdateDueFilter, "status", "published", "currency", "treatment_partner"]
    search_fields = ["code", "name", "condition"]
    # The ledger owns these: editing them by hand would make verify_ledger fail.
    readonly_fields = ["funding_received", "fully_funded_at", "created_at", "updated_at"]
    list_select_related = ["treatment_partner"]
    always_saved = ("updated_at",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return self.readonly_fields
        return [*self.readonly_fields, "treatment_partner", "pending_partner_change"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = [f for f in super().get_fields(request, obj) if f not in ("new_treatment_partner", "change_reason")]
        if obj is None:
            return [f for f in fields if f != "pending_partner_change"]
        return [*fields, "new_treatment_partner", "change_reason"]

    @admin.display(description="Pending partner change")
    def pending_partner_change(self, patient: Patient) -> str:
        return _pending_html(patient.partner_changes.all())

    @admin.display(description="Progress")
    def progress(self, patient: Patient) -> str:
        return format_html(
            '<progress value="{}" max="100"></progress> {}%', patient.funding_percent, patient.funding_percent
        )


def _pending_html(changes: Any) -> str:
    pending = changes.filter(status=PayoutDestinationChange.Status.REQUESTED) if changes is not None else []
    if not pending:
        return "—"
    return format_html_join(
        mark_safe("<br>"),
        "#{}: {} (requested by {} on {}; not applied until approved)",
        ((c.pk, describe(c), c.requested_by, f"{localtime(c.requested_at):%Y-%m-%d %H:%M}") for c in pending),
    )


@admin.register(PayoutDestinationChange)
class PayoutDestinationChangeAdmin(admin.ModelAdmin):
    """The checker's page. Full numbers are shown: the approver must be able to check the number with the
    partner (by a call to a number already on file) before approving."""

    list_display = ["id", "target", "change", "reason", "status", "requested_by", "requested_at", "decided_by"]
    list_filter = ["status", "kind"]
    search_fields = ["partner__name", "patient__code", "reason"]
    list_select_related = ["partner", "patient", "requested_by", "decided_by"]
    actions = ["approve", "reject", "cancel"]
    fields = [
        "target",
        "change",
        "reason",
        "status",
        "requested_by",
        "requested_at",
        "decided_by",
        "decided_at",
        "note",
    ]
    readonly_fields = fields

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(APPROVE_PERMISSION)

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        user = request.user
        requesters = ("patients.change_treatmentpartner", "patients.add_treatmentpartner", "patients.change_patient")
        return any(user.has_perm(p) for p in (*requesters, APPROVE_PERMISSION))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Requesters see the changes to cancel theirs; checkers to decide them.
        return (
            super().has_view_permission(request, obj)
            or self.has_approve_permission(request)
            or self.has_cancel_permission(request)
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # requested from the partner's or the patient's page

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # moves only by its actions; the record is evidence

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Target")
    def target(self, change: PayoutDestinationChange) -> str:
        return change.target_label

    @admin.display(description="Old → new")
    def change(self, change: PayoutDestinationChange) -> str:
        return describe(change)

    @admin.action(description="Approve and apply (a different staff user than the requester)", permissions=["approve"])
    def approve(self, request: HttpRequest, queryset: Any) -> None:
        self._each(request, queryset, lambda c: destination_change_approve(change_id=c.pk, approved_by=request.user))

    @admin.action(description="Reject (nothing changes)", permissions=["approve"])
    def reject(self, request: HttpRequest, queryset: Any) -> None:
        self._each(request, queryset, lambda c: destination_change_reject(change_id=c.pk, rejected_by=request.user))

    @admin.action(description="Cancel my request (nothing changes)", permissions=["cancel"])
    def cancel(self, request: HttpRequest, queryset: Any) -> None:
        self._each(request, queryset, lambda c: destination_change_cancel(change_id=c.pk, cancelled_by=request.user))

    def _each(self, request: HttpRequest, queryset: Any, step: Any) -> None:
        for change in queryset:
            try:
                done = step(change)
            except DestinationRefused as refused:
                self.message_user(request, f"Change #{change.pk}: {refused.message}", messages.ERROR)
                continue
            self.message_user(request, f"Change #{done.pk}: {done.get_status_display()}", messages.SUCCESS)
