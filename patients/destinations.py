"""Where payouts go, under maker-checker: a change to a treatment partner's payout wallet (provider, number,
account name) or to a patient's treatment partner takes effect only when a second person approves it.

request (staff user A, who may change partners or patients) → approve (staff user B ≠ A, holding
`patients.approve_destination_change`, signed in with a second factor) → the new values are written, once.
A reject or cancel ends a request without changing anything. Each step is audited with the old and new values
(the `PayoutDestinationChange` row itself, and the payments audit log through `patients.signals`).

A new partner's destination is a request like any other: until it is approved the partner has none, so no
payout can go to it. Payouts snapshot `approved_destination` (never a pending value) and refuse a partner
whose fields are not the ones last approved (written some other way than through this module).

A patient's first treatment partner is chosen when the patient is added (no money can go anywhere before the
patient is funded, and every partner's wallet is itself approved); moving a patient to another partner later is
a change that needs approval.

This module imports nothing of donor or payments (the one-way rule).
"""

import logging
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from patients.models import PARTNER_DESTINATION_FIELDS, Patient, PayoutDestinationChange, TreatmentPartner
from patients.signals import destination_audit

logger = logging.getLogger("payments.destinations")

Staff = User  # a staff member acting in the admin (the project uses Django's user model)
APPROVE_PERMISSION = "patients.approve_destination_change"
# E.164 without the "+": country code and number, at most 15 digits.
MSISDN = re.compile(r"^[1-9]\d{7,14}$")
Kind = PayoutDestinationChange.Kind
Status = PayoutDestinationChange.Status


class DestinationRefused(Exception):
    """The request or decision breaks a rule. `message` is shown to the staff user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Destination:
    """A partner's approved payout destination, as a payout snapshots it."""

    partner_id: int
    provider: str
    msisdn: str
    account_name: str


def partner_destination_values(partner: TreatmentPartner) -> dict[str, str]:
    return {field: getattr(partner, field) for field in PARTNER_DESTINATION_FIELDS}


def patient_destination_values(patient: Patient) -> dict[str, Any]:
    partner = patient.treatment_partner
    return {
        "treatment_partner": patient.treatment_partner_id,
        "treatment_partner_name": partner.name if partner else "",
    }


def last_approved(partner_id: int) -> PayoutDestinationChange | None:
    """The approval behind the partner's destination today (the latest approved partner change)."""
    return (
        PayoutDestinationChange.objects.filter(kind=Kind.PARTNER, partner_id=partner_id, status=Status.APPROVED)
        .select_related("requested_by", "decided_by")
        .order_by("-decided_at", "-id")
        .first()
    )


def approved_destination(*, partner_id: int | None) -> Destination:
    """The partner's destination if it is the one last approved; DestinationRefused otherwise.

    Read fresh from the database: a pending change is never in the partner's fields, so this is the approved
    value even while a change waits for its second person."""
    if partner_id is None:
        raise DestinationRefused("The patient has no treatment partner.")
    partner = TreatmentPartner.objects.get(pk=partner_id)
    current = partner_destination_values(partner)
    approval = last_approved(partner_id)
    if approval is None:
        raise DestinationRefused(
            f"{partner.name}'s payout destination has not been approved by a second person yet "
            "(Payout destination changes)."
        )
    if {field: approval.new.get(field, "") for field in PARTNER_DESTINATION_FIELDS} != current:
        raise DestinationRefused(
            f"{partner.name}'s payout destination is not the one last approved (it was changed outside the "
            "approval): request the right one under Payout destination changes."
        )
    return Destination(partner.pk, partner.payout_provider, partner.payout_msisdn, partner.payout_account_name)


def destination_is_current(*, partner_id: int, provider: str, msisdn: str) -> bool:
    """Whether a payout's snapshot (provider, number) is still the partner's approved destination."""
    try:
        destination = approved_destination(partner_id=partner_id)
    except DestinationRefused:
        return False
    return (destination.provider, destination.msisdn) == (provider, msisdn)


def _require(user: Staff, permissions: tuple[str, ...], action: str) -> None:
    allowed = getattr(user, "is_staff", False) and getattr(user, "is_active", False)
    if not (allowed and any(user.has_perm(p) for p in permissions)):
        raise DestinationRefused(f"Only staff users with the {permissions[0]!r} permission may {action}.")


def clean_partner_destination(values: dict[str, Any]) -> dict[str, str]:
    """The three fields, normalised and checked: a provider this site runs and an E.164 number, or neither."""
    provider = str(values.get("payout_provider") or "").strip().lower()
    msisdn = re.sub(r"[\s\-+]", "", str(values.get("payout_msisdn") or ""))
    account_name = " ".join(str(values.get("payout_account_name") or "").split())
    if bool(provider) != bool(msisdn):
        raise DestinationRefused("Give both the payout provider and the payout number, or neither.")
    if provider and provider not in settings.PAYMENT_RAILS:
        raise DestinationRefused(f"Payout provider must be one of: {', '.join(settings.PAYMENT_RAILS)}.")
    if msisdn and not MSISDN.match(msisdn):
        raise DestinationRefused("The payout number is the full international number in digits, e.g. 254708374149.")
    if len(account_name) > 200:
        raise DestinationRefused("The account name is at most 200 characters.")
    return {"payout_provider": provider, "payout_msisdn": msisdn, "payout_account_name": account_name}


def _pending(**target: Any) -> PayoutDestinationChange | None:
    return PayoutDestinationChange.objects.filter(status=Status.REQUESTED, **target).first()


def destination_change_check(
    *,
    requested_by: Staff,
    partner: TreatmentPartner | None = None,
    patient: Patient | None = None,
    new: dict[str, Any],
    adding: bool = False,
) -> dict[str, Any]:
    """The rules of a request, without locking (the admin form shows them before saving). Returns the new
    values as they would be stored; DestinationRefused if nothing would change or a rule is broken."""
    if (partner is None) == (patient is None):
        raise ValueError("name exactly one of partner or patient")
    if partner is not None:
        perms = ("patients.add_treatmentpartner",) if adding else ("patients.change_treatmentpartner",)
        _require(requested_by, perms, "change where a partner's payouts go")
        values: dict[str, Any] = clean_partner_destination(new)
        current: dict[str, Any] = partner_destination_values(partner)
        pending = _pending(kind=Kind.PARTNER, partner_id=partner.pk) if partner.pk else None
    else:
        assert patient is not None
        _require(requested_by, ("patients.change_patient",), "change a patient's treatment partner")
        chosen = new.get("treatment_partner")
        chosen_id = chosen.pk if isinstance(chosen, TreatmentPartner) else chosen
        chosen_partner = TreatmentPartner.objects.filter(pk=chosen_id).first() if chosen_id else None
        if chosen_id and chosen_partner is None:
            raise DestinationRefused("That treatment partner does not exist.")
        values = {
            "treatment_partner": chosen_partner.pk if chosen_partner else None,
            "treatment_partner_name": chosen_partner.name if chosen_partner else "",
        }
        current = patient_destination_values(patient)
        pending = _pending(kind=Kind.PATIENT, patient_id=patient.pk)
    if pending is not None:
        raise DestinationRefused(
            f"Change #{pending.pk} is already waiting for approval: approve, reject or cancel it first."
        )
    confirming = partner is not None and partner.pk and current["payout_provider"] and not _approved_by_two(partner.pk)
    if _same(values, current) and not confirming:
        # The same values again only confirm a destination nobody approved as a second person (migrated, seeded).
        raise DestinationRefused("Nothing to change: these are the current values.")
    return values


def _approved_by_two(partner_id: int) -> bool:
    approval = last_approved(partner_id)
    return bool(approval and approval.requested_by_id and approval.decided_by_id)


def _same(values: dict[str, Any], current: dict[str, Any]) -> bool:
    if "treatment_partner" in values:
        return values["treatment_partner"] == current["treatment_partner"]
    return all(values[field] == current[field] for field in PARTNER_DESTINATION_FIELDS)


def destination_change_request(
    *,
    requested_by: Staff,
    partner: TreatmentPartner | None = None,
    patient: Patient | None = None,
    new: dict[str, Any],
    reason: str = "",
    adding: bool = False,
) -> PayoutDestinationChange:
    """The maker's step: record the change. Nothing where payouts go is written.

    `adding`: the partner is being created in the same transaction (the add permission suffices)."""
    with transaction.atomic():
        # The target's row lock makes "one pending change per target" hold against a concurrent request.
        if partner is not None:
            partner = TreatmentPartner.objects.select_for_update().get(pk=partner.pk)
        if patient is not None:
            patient = Patient.objects.select_for_update().get(pk=patient.pk)  # this row only, not its partner's
        values = destination_change_check(
            requested_by=requested_by, partner=partner, patient=patient, new=new, adding=adding
        )
        if partner is not None:
            old: dict[str, Any] = partner_destination_values(partner)
        else:
            assert patient is not None
            old = patient_destination_values(patient)
        change = PayoutDestinationChange.objects.create(
            kind=Kind.PARTNER if partner is not None else Kind.PATIENT,
            partner=partner,
            patient=patient,
            old=old,
            new=values,
            reason=reason.strip()[:255],
            requested_by=requested_by,
        )
        _audit(requested_by, "destination.request", change)
    logger.info("Destination change #%s requested by %s for %s", change.pk, requested_by, change.target_label)
    return change


def destination_change_approve(*, change_id: int, approved_by: Staff) -> PayoutDestinationChange:
    """The checker's step: a different staff user approves, and only then are the new values written, once."""
    _require(approved_by, (APPROVE_PERMISSION,), "approve changes to where payouts go")
    with transaction.atomic():
        change = PayoutDestinationChange.objects.select_for_update().get(pk=change_id)
        if change.requested_by_id is not None and change.requested_by_id == approved_by.pk:
            raise DestinationRefused(
                "A change to where payouts go must be approved by someone other than its requester."
            )
        if change.status != Status.REQUESTED:
            raise DestinationRefused(f"Change #{change.pk} is {change.status}, not awaiting approval.")
        if change.kind == Kind.PARTNER:
            assert change.partner_id is not None  # the table's constraint: a partner change names its partner
            partner = TreatmentPartner.objects.select_for_update().get(pk=change.partner_id)
            if partner_destination_values(partner) != {f: change.old.get(f, "") for f in PARTNER_DESTINATION_FIELDS}:
                raise DestinationRefused(f"Change #{change.pk} was asked against other values: reject it.")
            TreatmentPartner.objects.filter(pk=partner.pk).update(
                **{field: change.new[field] for field in PARTNER_DESTINATION_FIELDS}
            )
        else:
            assert change.patient_id is not None
            patient = Patient.objects.select_for_update().get(pk=change.patient_id)
            if patient.treatment_partner_id != change.old.get("treatment_partner"):
                raise DestinationRefused(f"Change #{change.pk} was asked against another partner: reject it.")
            Patient.objects.filter(pk=patient.pk).update(
                treatment_partner_id=change.new["treatment_partner"], updated_at=timezone.now()
            )
        _decide(change, Status.APPROVED, approved_by)
        _audit(approved_by, "destination.approve", change)
    logger.warning("Destination change #%s approved by %s: %s", change.pk, approved_by, change.target_label)
    return change


def destination_change_reject(*, change_id: int, rejected_by: Staff, note: str = "") -> PayoutDestinationChange:
    """A checker turns a request down; nothing changes."""
    _require(rejected_by, (APPROVE_PERMISSION,), "reject changes to where payouts go")
    return _close(change_id, Status.REJECTED, rejected_by, "destination.reject", note)


def destination_change_cancel(*, change_id: int, cancelled_by: Staff) -> PayoutDestinationChange:
    """Its requester (or a checker) withdraws a request; nothing changes."""
    change = PayoutDestinationChange.objects.get(pk=change_id)
    if change.requested_by_id != cancelled_by.pk:
        _require(cancelled_by, (APPROVE_PERMISSION,), "cancel someone else's change request")
    return _close(change_id, Status.CANCELLED, cancelled_by, "destination.cancel", "")


def _close(change_id: int, status: str, user: Staff, action: str, note: str) -> PayoutDestinationChange:
    with transaction.atomic():
        change = PayoutDestinationChange.objects.select_for_update().get(pk=change_id)
        if change.status != Status.REQUESTED:
            raise DestinationRefused(f"Change #{change.pk} is {change.status}, not awaiting approval.")
        change.note = note.strip()[:255]
        _decide(change, status, user)
        _audit(user, action, change)
    return change


def _decide(change: PayoutDestinationChange, status: str, user: Staff) -> None:
    change.status = status
    change.decided_by = user
    change.decided_at = timezone.now()
    change.save(update_fields=["status", "decided_by", "decided_at", "note"])


def destination_seed(partner: TreatmentPartner, *, note: str) -> PayoutDestinationChange:
    """Record a partner's current destination as approved without a second person: for demo data
    (`seed_demo`) and test factories only; nothing in the admin or the API calls it. The record and the audit
    log say it was seeded, and the payout checker sees that note next to the number."""
    change = PayoutDestinationChange.objects.create(
        kind=Kind.PARTNER,
        partner=partner,
        old={field: "" for field in PARTNER_DESTINATION_FIELDS},
        new=partner_destination_values(partner),
        status=Status.APPROVED,
        decided_at=timezone.now(),
        note=note[:255],
    )
    _audit(None, "destination.seed", change)
    return change


def describe(change: PayoutDestinationChange) -> str:
    """The change in one line, old → new with full numbers (staff only: the audit log and the admin)."""
    if change.kind == Kind.PATIENT:
        before = change.old.get("treatment_partner_name") or "none"
        after = change.new.get("treatment_partner_name") or "none"
        old_id, new_id = change.old.get("treatment_partner"), change.new.get("treatment_partner")
        return f"treatment_partner: {before} (#{old_id}) → {after} (#{new_id})"
    parts = [
        f"{field}: {change.old.get(field) or '—'} → {change.new.get(field) or '—'}"
        for field in PARTNER_DESTINATION_FIELDS
        if change.old.get(field, "") != change.new.get(field, "")
    ]
    return "; ".join(parts) or "no field changed"


def _audit(actor: Staff | None, action: str, change: PayoutDestinationChange) -> None:
    target = change.target_label
    detail = f"change #{change.pk}: {describe(change)}"
    if change.reason and action == "destination.request":
        detail += f" (reason: {change.reason})"
    destination_audit.send(sender=PayoutDestinationChange, actor=actor, action=action, target=target, detail=detail)
