"""Payouts to treatment partners over M-Pesa B2C, under maker-checker.

request (staff user A) → approve (staff user B ≠ A, with the approve permission) → send once → result
callback (paid | failed) or queue timeout (ambiguous; resolved by a later result or by hand, never re-sent
automatically). A payout never exceeds the patient's funds not yet paid out; a paid payout moves the patient
to `in_treatment`. Every state write is conditional on the state it came from, so a result callback that
arrives while the send is still timing out is never overwritten. The powers are permissions, checked here
(not only in the admin): `payments.add_payout`, `payments.approve_payout`, `payments.resolve_payout`.
"""

import logging
import uuid
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from patients.models import Patient
from patients.services import patient_lock
from payments.models import CallbackEvent, Payout, fit
from payments.providers import get_provider
from payments.providers.base import CallbackMalformed, CallbackTrust, ProviderError
from payments.providers.mpesa import B2C_RESULT, B2C_TIMEOUT, B2CResult, MpesaProvider
from payments.services.inbox import CallbackOutcome, callback_event_mark, event_trust, url_token_check

logger = logging.getLogger("payments.payouts")

COMMITTED = [
    Payout.Status.REQUESTED,
    Payout.Status.SENDING,
    Payout.Status.SENT,
    Payout.Status.PAID,
    Payout.Status.AMBIGUOUS,
]
TERMINAL = {Payout.Status.PAID, Payout.Status.FAILED, Payout.Status.CANCELLED}
# A provider's result may only settle a payout we actually sent (or were sending when the answer was lost).
AWAITING_RESULT = (Payout.Status.SENDING, Payout.Status.SENT, Payout.Status.AMBIGUOUS)
ACK = {"ResultCode": 0, "ResultDesc": "Accepted"}
# A payout still `sending` after this long lost its answer (the process died mid-request): a person may
# resolve it after checking the provider's portal.
STUCK_SENDING_AFTER = timedelta(minutes=10)


class PayoutRefused(Exception):
    """The request breaks a rule (maker-checker, limit, state). `message` is shown to the staff user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def payout_available(*, patient: Patient, exclude_id: int | None = None) -> Decimal:
    """Funds received and not yet paid out or committed to a payout in flight."""
    committed = Payout.objects.filter(patient=patient, status__in=COMMITTED)
    if exclude_id is not None:
        committed = committed.exclude(pk=exclude_id)
    used = committed.aggregate(total=Sum("amount"))["total"] or Decimal("0")
    return patient.funding_received - used


def _require(user, permission: str, action: str, *alternatives: str) -> None:
    allowed = getattr(user, "is_staff", False) and user.is_active
    if not (allowed and any(user.has_perm(p) for p in (permission, *alternatives))):
        raise PayoutRefused(f"Only staff users with the {permission!r} permission may {action}.")


def payout_check(*, patient: Patient, amount: Decimal, requested_by) -> None:
    """The rules of a payout request, without locking (the admin form shows them before saving)."""
    _require(requested_by, "payments.add_payout", "request payouts")
    partner = patient.treatment_partner
    if partner is None or partner.payout_provider != "mpesa" or not partner.payout_msisdn:
        raise PayoutRefused("The patient's treatment partner has no M-Pesa payout number.")
    if patient.currency != "KES":
        raise PayoutRefused("M-Pesa payouts are in KES; this patient is funded in another currency.")
    amount = Decimal(amount)
    if amount <= 0 or amount != amount.to_integral_value():
        raise PayoutRefused("A payout is a whole, positive number of shillings.")
    available = payout_available(patient=patient)
    if amount > available:
        raise PayoutRefused(f"Only KES {available:,} of {patient.code}'s funds is not yet paid out.")


def payout_request(*, patient: Patient, amount: Decimal, requested_by) -> Payout:
    """The maker's step: record the intent. Nothing is sent."""
    payout_check(patient=patient, amount=amount, requested_by=requested_by)
    amount = Decimal(amount)
    partner = patient.treatment_partner
    with transaction.atomic():
        locked = patient_lock(patient_id=patient.pk)
        available = payout_available(patient=locked)
        if amount > available:
            raise PayoutRefused(f"Only KES {available:,} of {locked.code}'s funds is not yet paid out.")
        payout = Payout.objects.create(
            reference=f"{settings.DONATION_REFERENCE_PREFIX}-PO-{uuid.uuid4().hex[:16]}",
            patient=locked,
            treatment_partner=partner,
            provider="mpesa",
            msisdn=partner.payout_msisdn,
            amount=amount,
            currency=locked.currency,
            requested_by=requested_by,
        )
    logger.info("Payout %s requested by %s: KES %s for %s", payout.reference, requested_by, amount, patient.code)
    return payout


def payout_approve(*, payout_id: int, approved_by) -> Payout:
    """The checker's step: a different staff user approves; only then is the B2C request sent, once."""
    _require(approved_by, "payments.approve_payout", "approve payouts")
    with transaction.atomic():
        payout = Payout.objects.select_for_update().get(pk=payout_id)
        if payout.requested_by_id == approved_by.pk:
            raise PayoutRefused("A payout must be approved by someone other than its requester.")
        if payout.status != Payout.Status.REQUESTED:
            raise PayoutRefused(f"Payout {payout.reference} is {payout.status}, not awaiting approval.")
        patient = patient_lock(patient_id=payout.patient_id)
        if payout.amount > payout_available(patient=patient, exclude_id=payout.pk):
            raise PayoutRefused("The patient's unpaid funds no longer cover this payout.")
        payout.status = Payout.Status.SENDING  # claimed: a second approval cannot send it again
        payout.approved_by = approved_by
        payout.approved_at = timezone.now()
        payout.save(update_fields=["status", "approved_by", "approved_at", "updated_at"])
    return _send(payout)


def _send(payout: Payout) -> Payout:
    provider: MpesaProvider = get_provider(payout.provider)
    base = settings.SITE_URL.rstrip("/")
    secret = f"{provider.b2c_token}/" if provider.b2c_token else ""  # without it results are held for review
    try:
        accepted = provider.b2c_payment(
            reference=payout.reference,
            msisdn=payout.msisdn,
            amount=payout.amount,
            result_url=f"{base}/webhooks/mpesa/b2c/result/{secret}",
            timeout_url=f"{base}/webhooks/mpesa/b2c/timeout/{secret}",
            remarks=f"Treatment {payout.patient.code}",
        )
    except ProviderError as error:
        # Refused, or never reached → failed, nothing moved. Timed out or cut off after sending → we cannot
        # know: ambiguous, never re-sent. Only from SENDING: a result callback may have settled it meanwhile.
        status = Payout.Status.AMBIGUOUS if error.ambiguous else Payout.Status.FAILED
        moved = Payout.objects.filter(pk=payout.pk, status=Payout.Status.SENDING).update(
            status=status,
            result_desc=fit(Payout, "result_desc", error.message),
            needs_review=status == Payout.Status.AMBIGUOUS,
            completed_at=timezone.now() if status == Payout.Status.FAILED else None,
        )
        logger.warning(
            "Payout %s not sent (%s): %s", payout.reference, status if moved else "already settled", error.message
        )
        payout.refresh_from_db()
        return payout
    Payout.objects.filter(pk=payout.pk, status=Payout.Status.SENDING).update(
        status=Payout.Status.SENT, sent_at=timezone.now()
    )
    if accepted.conversation_id:
        Payout.objects.filter(pk=payout.pk, conversation_id__isnull=True).update(
            conversation_id=fit(Payout, "conversation_id", accepted.conversation_id)
        )
    payout.refresh_from_db()
    logger.info("Payout %s sent to M-Pesa (%s)", payout.reference, accepted.conversation_id)
    return payout


def payout_cancel(*, payout_id: int, cancelled_by) -> Payout:
    """Withdraw a request nobody has approved yet (frees the patient's funds)."""
    _require(cancelled_by, "payments.add_payout", "cancel payout requests", "payments.approve_payout")
    with transaction.atomic():
        payout = Payout.objects.select_for_update().get(pk=payout_id)
        if payout.status != Payout.Status.REQUESTED:
            raise PayoutRefused(f"Payout {payout.reference} is {payout.status}; only a request can be cancelled.")
        payout.status = Payout.Status.CANCELLED
        payout.result_desc = f"Cancelled by {cancelled_by}"[:255]
        payout.completed_at = timezone.now()
        payout.save(update_fields=["status", "result_desc", "completed_at", "updated_at"])
    return payout


def payout_resolve(*, payout_id: int, paid: bool, resolved_by, receipt: str = "") -> Payout:
    """Settle an ambiguous payout by hand, after checking the M-Pesa org portal. Never re-sends anything.

    A payout stuck in `sending` (the process died while sending it) can be resolved once it has been stuck
    for STUCK_SENDING_AFTER."""
    _require(resolved_by, "payments.resolve_payout", "resolve payouts")
    if paid and not receipt.strip():
        raise PayoutRefused("Give the M-Pesa receipt (TransactionID) seen on the org portal.")
    with transaction.atomic():
        payout = Payout.objects.select_for_update().get(pk=payout_id)
        stuck = payout.status == Payout.Status.SENDING and (payout.approved_at or payout.updated_at) < (
            timezone.now() - STUCK_SENDING_AFTER
        )
        if payout.status not in (Payout.Status.AMBIGUOUS, Payout.Status.SENT) and not stuck:
            hint = " (still sending; wait a few minutes)" if payout.status == Payout.Status.SENDING else ""
            raise PayoutRefused(f"Payout {payout.reference} is {payout.status}; nothing to resolve{hint}.")
        payout.status = Payout.Status.PAID if paid else Payout.Status.FAILED
        payout.receipt = fit(Payout, "receipt", receipt.strip())
        payout.result_desc = fit(Payout, "result_desc", f"Resolved by hand by {resolved_by}")
        payout.completed_at = timezone.now()
        payout.needs_review = False
        payout.save(update_fields=["status", "receipt", "result_desc", "completed_at", "needs_review", "updated_at"])
        if paid:
            _to_treatment(payout)
    logger.warning("Payout %s resolved by hand by %s: %s", payout.reference, resolved_by, payout.status)
    return payout


def _to_treatment(payout: Payout) -> None:
    Patient.objects.filter(
        pk=payout.patient_id, status__in=[Patient.Status.FUNDING, Patient.Status.FULLY_FUNDED]
    ).update(status=Patient.Status.IN_TREATMENT)


def payout_callback(*, event: CallbackEvent, body: bytes, live: bool) -> CallbackOutcome:
    """A B2C result or queue-timeout callback, applied to the one payout it names exactly."""
    provider = get_provider(event.provider)
    assert isinstance(provider, MpesaProvider)
    if event_trust(event, provider, body, url_token_check(event, provider), live) == CallbackTrust.REJECTED:
        callback_event_mark(event, CallbackEvent.Status.REJECTED, error="authentication failed")
        return CallbackOutcome("unauthenticated", 401, "Callback authentication failed.")
    try:
        result = provider.parse_b2c_result(body)
    except CallbackMalformed as exc:
        callback_event_mark(event, CallbackEvent.Status.REJECTED, error=f"malformed: {exc}")
        return CallbackOutcome("malformed", 400, f"Malformed B2C callback: {exc}.")
    event.our_reference = result.originator_conversation_id
    event.provider_reference = result.conversation_id
    if event.trust != CallbackTrust.TRUSTED:
        callback_event_mark(event, CallbackEvent.Status.REVIEW, error="B2C callback without the URL token")
        return CallbackOutcome("review", 200, "Received; held for review.", ack=ACK)
    with transaction.atomic():
        payout = _payout_for(result)
        if payout is None:
            callback_event_mark(event, CallbackEvent.Status.REJECTED, error="unknown payout")
            return CallbackOutcome("unknown_reference", 404, "No payout with this conversation id.")
        if payout.status not in AWAITING_RESULT:
            if _already_says(payout, result, timeout=event.kind == B2C_TIMEOUT):
                # The same result again (a copy of a delivery whose first handling died after the commit).
                callback_event_mark(
                    event, CallbackEvent.Status.IGNORED, error=f"payout {payout.reference} already {payout.status}"
                )
                return CallbackOutcome("ignored", 200, "Already applied.", ack=ACK)
            if payout.status != Payout.Status.PAID and result.succeeded and event.kind != B2C_TIMEOUT:
                # Money moved for a payout we never sent or already called failed: a person must look.
                Payout.objects.filter(pk=payout.pk).update(needs_review=True)
            callback_event_mark(
                event, CallbackEvent.Status.REVIEW, error=f"result for payout {payout.reference} in {payout.status}"
            )
            return CallbackOutcome("review", 200, "Received; held for review.", ack=ACK)
        _apply(payout, result, timeout=event.kind == B2C_TIMEOUT)
    callback_event_mark(event, CallbackEvent.Status.PROCESSED)
    return CallbackOutcome("accepted", 200, "Callback received", ack=ACK)


def _already_says(payout: Payout, result: B2CResult, *, timeout: bool) -> bool:
    """The payout is settled exactly as this result says: paid with its receipt, or failed with its code."""
    if timeout:
        return False
    if payout.status == Payout.Status.PAID:
        return result.succeeded and (not result.transaction_id or result.transaction_id[:100] == payout.receipt)
    return payout.status == Payout.Status.FAILED and not result.succeeded and result.result_code == payout.result_code


def _payout_for(result: B2CResult) -> Payout | None:
    """The payout a result names: our OriginatorConversationID, else M-Pesa's ConversationID. An empty id
    never matches anything (a filter on an empty id would match every payout without one)."""
    if result.originator_conversation_id:
        payout = Payout.objects.select_for_update().filter(reference=result.originator_conversation_id).first()
        if payout is not None:
            return payout
    if result.conversation_id:
        return Payout.objects.select_for_update().filter(conversation_id=result.conversation_id).first()
    return None


def _apply(payout: Payout, result: B2CResult, *, timeout: bool) -> None:
    """The caller holds the payout's row lock and has checked that it awaits a result."""
    payout.result_code = fit(Payout, "result_code", result.result_code)
    payout.result_desc = fit(Payout, "result_desc", result.result_desc)
    if timeout:
        payout.status = Payout.Status.AMBIGUOUS
        payout.needs_review = True
        payout.save(update_fields=["status", "result_code", "result_desc", "needs_review", "updated_at"])
        logger.warning("Payout %s timed out in M-Pesa's queue: ambiguous until its result", payout.reference)
        return
    # A definite result settles what made it ambiguous; only a wrong amount still needs a person.
    payout.needs_review = result.amount is not None and result.succeeded and result.amount != payout.amount
    payout.status = Payout.Status.PAID if result.succeeded else Payout.Status.FAILED
    payout.receipt = fit(Payout, "receipt", result.transaction_id)
    payout.completed_at = timezone.now()
    if not payout.conversation_id and result.conversation_id:
        payout.conversation_id = fit(Payout, "conversation_id", result.conversation_id)
    payout.save(
        update_fields=[
            "status",
            "result_code",
            "result_desc",
            "receipt",
            "completed_at",
            "conversation_id",
            "needs_review",
            "updated_at",
        ]
    )
    if payout.status == Payout.Status.PAID:
        _to_treatment(payout)
    logger.info("Payout %s %s (%s %s)", payout.reference, payout.status, result.result_code, result.result_desc)


__all__ = [
    "B2C_RESULT",
    "B2C_TIMEOUT",
    "PayoutRefused",
    "payout_approve",
    "payout_callback",
    "payout_cancel",
    "payout_request",
    "payout_resolve",
]
