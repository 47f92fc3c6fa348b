"""Payouts to treatment partners, through the partner's payout provider (any with the `Payouts` capability),
on the money-out lifecycle (money_out.py): requested by one staff user, approved and sent once by another.

A payout never exceeds the patient's funds not yet paid out; a paid one moves the patient to `in_treatment`.
The powers are permissions, checked here (not only in the admin): `payments.add_payout`,
`payments.approve_payout`, `payments.resolve_payout`.
"""

import logging
import uuid
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction

from patients.destinations import Destination, DestinationRefused, approved_destination, destination_is_current
from patients.models import Patient
from patients.services import patient_lock
from payments.models import CallbackEvent, Payout
from payments.providers.base import PaymentStatus, PayoutRequest, PayoutResult, Payouts
from payments.providers.registry import PROVIDER_CLASSES
from payments.services import money_out as lifecycle
from payments.services import money_out_results as results
from payments.services.audit import audit_record
from payments.services.inbox import CallbackOutcome
from payments.services.money_out import DONE, PENDING, MoneyOutRefused, Sent, Staff, Verdict
from payments.services.money_out_results import approve

logger = logging.getLogger("payments.payouts")
PayoutRefused = MoneyOutRefused
STUCK_SENDING_AFTER = lifecycle.STUCK_SENDING_AFTER
# A payout's status in the lifecycle's terms, as for refunds: anything not final (pending, unknown) waits.
OUTCOMES = {PaymentStatus.SUCCEEDED: DONE, PaymentStatus.FAILED: Payout.Status.FAILED}


def verdict_of(result: PayoutResult) -> Verdict:
    return Verdict.of(result, OUTCOMES.get(result.status, PENDING))


class PayoutFlow(lifecycle.Flow):
    def chosen_id(self, provider: Payouts, obj: Payout) -> str:
        return provider.payout_reference_before_request(obj.reference)

    def send(self, provider: Payouts, obj: Payout, result_url: str, timeout_url: str) -> Sent:
        accepted = provider.send_payout(
            PayoutRequest(
                reference=obj.reference,
                msisdn=obj.msisdn,
                amount=obj.amount,
                currency=obj.currency,
                result_url=result_url,
                timeout_url=timeout_url,
                remarks=f"Treatment {obj.patient.code}",
                provider_reference=obj.provider_reference or "",
            )
        )
        return Sent(accepted.provider_reference, verdict_of(accepted.result) if accepted.result else None)

    def query(self, provider: Payouts, obj: Payout) -> Verdict | None:
        said = provider.payout_status(reference=obj.reference, provider_reference=obj.provider_reference or "")
        return verdict_of(said) if said is not None else None

    def parse(self, provider: Payouts, kind: str, body: bytes) -> Verdict:
        return verdict_of(provider.parse_payout_result(kind, body))

    def patient_id(self, obj: Payout) -> int:
        return obj.patient_id

    def before_approve(self, obj: Payout, receipt: str) -> None:
        # Only where it was requested to go, and only while that is still the patient's partner and the partner's
        # approved destination (patients.destinations): a change approved since means the checker saw another.
        partner_now = Patient.objects.filter(pk=obj.patient_id).values_list("treatment_partner_id", flat=True).first()
        if partner_now != obj.treatment_partner_id or not destination_is_current(
            partner_id=obj.treatment_partner_id, provider=obj.provider, msisdn=obj.msisdn
        ):
            raise PayoutRefused("Where this payout goes changed after it was requested: cancel it and request again.")

    def on_done(self, obj: Payout, verdict: Verdict) -> None:
        Patient.objects.filter(
            pk=obj.patient_id, status__in=[Patient.Status.FUNDING, Patient.Status.FULLY_FUNDED]
        ).update(status=Patient.Status.IN_TREATMENT)


FLOW = PayoutFlow(Payout, Payouts)


def payout_available(*, patient: Patient, exclude_id: int | None = None) -> Decimal:
    """Funds received and not yet paid out, committed to a payout in flight, or being refunded."""
    exclude = Payout.objects.filter(pk=exclude_id).first() if exclude_id is not None else None
    return lifecycle.funds_available(patient, exclude=exclude)


def payout_provider(patient: Patient) -> Payouts:
    """The provider that pays this patient's treatment partner, in the patient's currency."""
    partner = patient.treatment_partner
    if partner is None or not partner.payout_provider:
        raise PayoutRefused("The patient's treatment partner has no payout provider.")
    name = getattr(PROVIDER_CLASSES.get(partner.payout_provider), "display_name", partner.payout_provider)
    provider = FLOW.provider(partner.payout_provider)
    if provider is None:
        raise PayoutRefused(f"{name} payouts are not available here.")
    if not partner.payout_msisdn:
        raise PayoutRefused(f"The patient's treatment partner has no {name} payout number.")
    if patient.currency not in provider.payout_currencies:
        currencies = ", ".join(sorted(provider.payout_currencies))
        raise PayoutRefused(f"{name} payouts are in {currencies}; this patient is funded in {patient.currency}.")
    return provider


def payout_check(*, patient: Patient, amount: Decimal, requested_by: Staff) -> None:
    """The rules of a payout request, without locking (the admin form shows them before saving)."""
    lifecycle.require(requested_by, "payments.add_payout", "request payouts")
    provider = payout_provider(patient)
    amount = Decimal(amount)
    if amount <= 0 or (provider.payout_whole_amounts_only and amount != amount.to_integral_value()):
        raise PayoutRefused("A payout is a whole, positive amount.")
    available = lifecycle.funds_available(patient)
    if amount > available:
        raise PayoutRefused(f"Only {patient.currency} {available:,} of {patient.code}'s funds is not yet paid out.")
    _approved_destination(patient)


def _approved_destination(patient: Patient) -> Destination:
    """Where a payout may go: the partner's destination a second person approved (patients.destinations)."""
    try:
        return approved_destination(partner_id=patient.treatment_partner_id)
    except DestinationRefused as refused:
        raise PayoutRefused(refused.message) from refused


def payout_request(*, patient: Patient, amount: Decimal, requested_by: Staff) -> Payout:
    """The maker's step: record the intent. Nothing is sent."""
    payout_check(patient=patient, amount=amount, requested_by=requested_by)
    partner = patient.treatment_partner
    assert partner is not None  # payout_check refused a patient without one
    with transaction.atomic():
        locked = patient_lock(patient_id=patient.pk)
        payout_check(patient=locked, amount=amount, requested_by=requested_by)
        # The snapshot is the approved destination read now, under the patient's lock: never a pending change.
        destination = _approved_destination(locked)
        if (destination.partner_id, destination.provider) != (partner.pk, partner.payout_provider):
            raise PayoutRefused("Where this payout would go changed a moment ago: look again and request again.")
        payout = Payout.objects.create(
            reference=f"{settings.DONATION_REFERENCE_PREFIX}-PO-{uuid.uuid4().hex[:16]}",
            patient=locked,
            treatment_partner_id=destination.partner_id,
            provider=destination.provider,
            msisdn=destination.msisdn,
            amount=Decimal(amount),
            currency=locked.currency,
            requested_by=requested_by,
        )
        audit_record(
            actor=requested_by,
            action="payout.request",
            target=f"payout {payout.reference}",
            detail=f"{payout.currency} {amount} for {locked.code}",
        )
    logger.info(
        "Payout %s requested by %s: %s %s for %s", payout.reference, requested_by, payout.currency, amount, patient.code
    )
    return payout


def payout_approve(*, payout_id: int, approved_by: Staff) -> Any:
    return approve(FLOW, payout_id, approved_by)


def payout_cancel(*, payout_id: int, cancelled_by: Staff) -> Any:
    return lifecycle.cancel(FLOW, payout_id, cancelled_by)


def payout_resolve(*, payout_id: int, paid: bool, resolved_by: Staff, receipt: str = "") -> Any:
    return lifecycle.resolve(FLOW, payout_id, done=paid, by=resolved_by, receipt=receipt)


def payout_callback(*, event: CallbackEvent, body: bytes, live: bool) -> CallbackOutcome:
    return results.handle_callback(FLOW, event=event, body=body, live=live)


def payouts_reconcile(*, limit: int = 200) -> int:
    return results.reconcile(FLOW, limit=limit)
