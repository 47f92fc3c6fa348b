"""Treatment updates under maker-checker: news of a patient is written by one person and published (and sent to
the donors who funded the patient) only when a different person approves it.

write (staff holding `patients.add_treatmentupdate`; a treatment partner's member only for that partner's
patients) → approve (another staff user holding `patients.approve_treatmentupdate`) → `update_approved` is sent
inside the approval's transaction, so the donor app's outbox rows commit with it. A photo is refused unless the
patient's photo consent is recorded. Each step is audited through `patients.signals.update_audit`.

This module imports nothing of donor or payments (the one-way rule).
"""

import logging
from datetime import timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from patients.models import Patient, TreatmentUpdate
from patients.signals import update_approved, update_audit

logger = logging.getLogger("payments.updates")

WRITE_PERMISSION = "patients.add_treatmentupdate"
APPROVE_PERMISSION = "patients.approve_treatmentupdate"
UPDATE_DUE_DAYS = 60  # a patient funded this long ago with no approved update is listed in the admin


class UpdateRefused(Exception):
    """The update or decision breaks a rule; `message` is shown to the staff user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _may_write_for(user: User, patient: Patient) -> bool:
    """Staff may write for any patient, a partner's member only for that partner's patients."""
    if not (user.is_active and user.is_staff and user.has_perm(WRITE_PERMISSION)):
        return False
    partner_ids = set(user.treatment_partners.values_list("pk", flat=True))
    return not partner_ids or patient.treatment_partner_id in partner_ids


def treatment_update_check(*, author: User, patient: Patient, kind: str, text: str, photo_url: str = "") -> str:
    """The rules of a new update without saving it (the admin form shows them). Returns the cleaned text."""
    if not _may_write_for(author, patient):
        raise UpdateRefused(f"You may not write updates for {patient.code}.")
    if kind not in TreatmentUpdate.Kind.values:
        raise UpdateRefused(f"Kind must be one of: {', '.join(TreatmentUpdate.Kind.values)}.")
    cleaned = text.strip()
    if not cleaned:
        raise UpdateRefused("Write what happened.")
    if len(cleaned) > 2000:
        raise UpdateRefused("An update is at most 2000 characters.")
    if photo_url and patient.photo_consent_at is None:
        raise UpdateRefused(f"{patient.code}'s photo consent is not recorded: no photo may go with the update.")
    return cleaned


def treatment_update_write(
    *, author: User, patient: Patient, kind: str, text: str, photo_url: str = ""
) -> TreatmentUpdate:
    """The maker's step: the update is recorded, awaiting a second person. Nothing is shown or sent yet."""
    cleaned = treatment_update_check(author=author, patient=patient, kind=kind, text=text, photo_url=photo_url)
    with transaction.atomic():
        update = TreatmentUpdate.objects.create(
            patient=patient, kind=kind, text=cleaned, photo_url=photo_url, written_by=author
        )
        _audit(author, "update.write", update)
    return update


def treatment_update_approve(*, update_id: int, approved_by: User) -> TreatmentUpdate:
    """The checker's step: another person approves; the update is published and the donors' messages recorded
    (in this transaction, by the receivers of `update_approved`). Approving twice is refused."""
    _require_checker(approved_by, "approve")
    with transaction.atomic():
        update = TreatmentUpdate.objects.select_for_update().select_related("patient").get(pk=update_id)
        if update.written_by_id == approved_by.pk:
            raise UpdateRefused("An update must be approved by someone other than the person who wrote it.")
        if update.status != TreatmentUpdate.Status.REQUESTED:
            raise UpdateRefused(f"Update #{update.pk} is {update.status}, not awaiting approval.")
        if update.photo_url and Patient.objects.get(pk=update.patient_id).photo_consent_at is None:
            raise UpdateRefused(f"{update.patient.code}'s photo consent was withdrawn: reject this update.")
        _decide(update, TreatmentUpdate.Status.APPROVED, approved_by, note="")
        _audit(approved_by, "update.approve", update)
        update_approved.send(sender=TreatmentUpdate, update=update)
    logger.info("Treatment update #%s for %s approved by %s", update.pk, update.patient.code, approved_by)
    return update


def treatment_update_reject(*, update_id: int, rejected_by: User, note: str = "") -> TreatmentUpdate:
    """A checker turns an update down: nothing is shown or sent."""
    _require_checker(rejected_by, "reject")
    with transaction.atomic():
        update = TreatmentUpdate.objects.select_for_update().get(pk=update_id)
        if update.status != TreatmentUpdate.Status.REQUESTED:
            raise UpdateRefused(f"Update #{update.pk} is {update.status}, not awaiting approval.")
        _decide(update, TreatmentUpdate.Status.REJECTED, rejected_by, note=note)
        _audit(rejected_by, "update.reject", update)
    return update


def treatment_updates_published(*, patient: Patient) -> QuerySet[TreatmentUpdate]:
    """What the public patient page shows: approved updates, newest first."""
    return patient.updates.filter(status=TreatmentUpdate.Status.APPROVED).order_by("-decided_at", "-id")


def patients_update_due(queryset: QuerySet[Patient] | None = None) -> QuerySet[Patient]:
    """Patients fully funded more than UPDATE_DUE_DAYS ago with no approved update since (the admin's list)."""
    since = timezone.now() - timedelta(days=UPDATE_DUE_DAYS)
    approved = TreatmentUpdate.objects.filter(patient=OuterRef("pk"), status=TreatmentUpdate.Status.APPROVED)
    patients = Patient.objects.all() if queryset is None else queryset
    return patients.filter(fully_funded_at__lt=since).exclude(Exists(approved))


def _require_checker(user: User, action: str) -> None:
    if not (user.is_active and user.is_staff and user.has_perm(APPROVE_PERMISSION)):
        raise UpdateRefused(f"Only staff users with the {APPROVE_PERMISSION!r} permission may {action} updates.")


def _decide(update: TreatmentUpdate, status: str, user: User, *, note: str) -> None:
    update.status = status
    update.decided_by = user
    update.decided_at = timezone.now()
    update.note = note.strip()[:255]
    update.save(update_fields=["status", "decided_by", "decided_at", "note"])


def _audit(actor: User | None, action: str, update: TreatmentUpdate) -> None:
    detail = f"update #{update.pk} ({update.kind}): {update.text[:120]}"
    update_audit.send(sender=TreatmentUpdate, actor=actor, action=action, target=f"patient {update.patient.code}",
                      detail=detail)  # fmt: skip
