"""The admin of treatment updates (maker-checker: write, then another person approves or rejects) and the
patients' list filter "Treatment update due": funded more than 60 days ago and no approved update since.

A treatment partner's member sees and writes updates only for that partner's patients; everything goes through
patients/updates.py, which holds the rules."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from patients.models import Patient, TreatmentUpdate
from patients.updates import (
    APPROVE_PERMISSION,
    UPDATE_DUE_DAYS,
    UpdateRefused,
    patients_update_due,
    treatment_update_approve,
    treatment_update_check,
    treatment_update_reject,
    treatment_update_write,
)


class UpdateDueFilter(admin.SimpleListFilter):
    title = "treatment update"
    parameter_name = "update_due"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("due", f"Due: funded over {UPDATE_DUE_DAYS} days ago, no update")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Patient]) -> QuerySet[Patient]:
        return patients_update_due(queryset) if self.value() == "due" else queryset


def _partner_ids(request: HttpRequest) -> set[int]:
    return set(request.user.treatment_partners.values_list("pk", flat=True))  # type: ignore[union-attr]


class TreatmentUpdateForm(forms.ModelForm):
    class Meta:
        model = TreatmentUpdate
        fields = ["patient", "kind", "text", "photo_url"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("patient") and data.get("kind") and not self.errors:
            try:
                data["text"] = treatment_update_check(
                    author=self.author, patient=data["patient"], kind=data["kind"], text=data.get("text", ""),
                    photo_url=data.get("photo_url", ""),
                )  # fmt: skip
            except UpdateRefused as refused:
                raise forms.ValidationError(refused.message) from refused
        return data


@admin.register(TreatmentUpdate)
class TreatmentUpdateAdmin(admin.ModelAdmin):
    form = TreatmentUpdateForm
    list_display = ["patient", "kind", "status", "written_by", "written_at", "decided_by", "decided_at"]
    list_filter = ["status", "kind"]
    search_fields = ["patient__code", "patient__name", "text"]
    list_select_related = ["patient", "written_by", "decided_by"]
    readonly_fields = ["status", "written_by", "written_at", "decided_by", "decided_at", "note"]
    actions = ["approve", "reject"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[TreatmentUpdate]:
        queryset = super().get_queryset(request)
        partners = _partner_ids(request)
        return queryset.filter(patient__treatment_partner__in=partners) if partners else queryset

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        form.author = request.user
        partners = _partner_ids(request)
        if partners and "patient" in form.base_fields:
            field = form.base_fields["patient"]
            field.queryset = field.queryset.filter(treatment_partner__in=partners)  # type: ignore[attr-defined]
        return form

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # written once; a correction is a new update (the approved one went to donors)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(APPROVE_PERMISSION)

    def save_model(self, request: HttpRequest, obj: TreatmentUpdate, form: Any, change: bool) -> None:
        # Through the service (its rules and its audit step), then the admin's object names the saved row.
        saved = treatment_update_write(
            author=request.user, patient=obj.patient, kind=obj.kind, text=obj.text, photo_url=obj.photo_url,  # type: ignore[arg-type]
        )  # fmt: skip
        obj.pk, obj.written_by, obj.written_at = saved.pk, saved.written_by, saved.written_at
        obj._state.adding = False

    @admin.action(description="Approve, publish and send to the donors (not the writer)", permissions=["approve"])
    def approve(self, request: HttpRequest, queryset: QuerySet[TreatmentUpdate]) -> None:
        self._each(request, queryset, lambda u: treatment_update_approve(update_id=u.pk, approved_by=request.user))

    @admin.action(description="Reject (nothing is shown or sent)", permissions=["approve"])
    def reject(self, request: HttpRequest, queryset: QuerySet[TreatmentUpdate]) -> None:
        self._each(request, queryset, lambda u: treatment_update_reject(update_id=u.pk, rejected_by=request.user))

    def _each(self, request: HttpRequest, queryset: QuerySet[TreatmentUpdate], step: Any) -> None:
        for update in queryset:
            try:
                done = step(update)
            except UpdateRefused as refused:
                self.message_user(request, f"Update #{update.pk}: {refused.message}", messages.ERROR)
                continue
            self.message_user(request, f"Update #{done.pk}: {done.get_status_display()}", messages.SUCCESS)
