"""Payouts to treatment partners over M-Pesa B2C, under maker-checker.

request (staff user A) → approve (staff user B ≠ A) → send once → result callback (paid | failed) or queue
timeout (ambiguous; resolved by a later result or by hand, never re-sent automatically). A payout never exceeds
the patient's funds not yet paid out; a paid payout moves the patient to `in_treatment`.
"""

import logging
import uuid
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from patients.models import Patient
from patients.services import patient_lock
from payments.models import CallbackEvent, Payout
from payments.providers import get_provider
from payments.providers.base import CallbackMalformed, CallbackTrust, ProviderError
from payments.providers.mpesa import B2C_RESULT, B2C_TIMEOUT, MpesaProvider
from payments.services.callbacks import callback_event_mark

logger = logging.getLogger("payments.payouts")

COMMITTED = [
    Payout.Status.REQUESTED,
    Payout.Status.SENDING,
    Payout.Status.SENT,
    Payout.Status.PAID,
    Payout.Status.AMBIGUOUS,
]
TERMINAL = {Payout.Status.PAID, Payout.Status.FAILED, Payout.Status.CANCELLED}
ACK = {"ResultCode": 0, "ResultDesc": "Accepted"}


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


def payout_check(*, patient: Patient, amount: Decimal, requested_by) -> None:
    """The rules of a payout request, without locking (the admin form shows them before saving)."""
    if not getattr(requested_by, "is_staff", False):
        raise PayoutRefused("Only staff users may request payouts.")
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
    if not getattr(approved_by, "is_staff", False):
        raise PayoutRefused("Only staff users may approve payouts.")
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
        # Refused outright → failed. Unreachable or a timeout → we cannot know: ambiguous, never re-sent.
        status = Payout.Status.AMBIGUOUS if error.retryable else Payout.Status.FAILED
        Payout.objects.filter(pk=payout.pk).update(
            status=status, result_desc=error.message[:255], needs_review=status == Payout.Status.AMBIGUOUS
        )
        logger.warning("Payout %s not sent (%s): %s", payout.reference, status, error.message)
        payout.refresh_from_db()
        return payout
    Payout.objects.filter(pk=payout.pk, status=Payout.Status.SENDING).update(
        status=Payout.Status.SENT, sent_at=timezone.now()
    )
    Payout.objects.filter(pk=payout.pk).update(conversation_id=accepted.conversation_id or None)
    payout.refresh_from_db()
    logger.info("Payout %s sent to M-Pesa (%s)", payout.reference, accepted.conversation_id)
    return payout


def payout_cancel(*, payout_id: int, cancelled_by) -> Payout:
    """Withdraw a request nobody has approved yet (frees the patient's funds)."""
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
    """Settle an ambiguous payout by hand, after checking the M-Pesa org portal. Never re-sends anything."""
    if not getattr(resolved_by, "is_staff", False):
        raise PayoutRefused("Only staff users may resolve payouts.")
    if paid and not receipt.strip():
        raise PayoutRefused("Give the M-Pesa receipt (TransactionID) seen on the org portal.")
    with transaction.atomic():
        payout = Payout.objects.select_for_update().get(pk=payout_id)
        if payout.status not in (Payout.Status.AMBIGUOUS, Payout.Status.SENT):
            raise PayoutRefused(f"Payout {payout.reference} is {payout.status}; nothing to resolve.")
        payout.status = Payout.Status.PAID if paid else Payout.Status.FAILED
        payout.receipt = receipt.strip()[:100]
        payout.result_desc = f"Resolved by hand by {resolved_by}"[:255]
        payout.completed_at = timezone.now()
        payout.needs_review = False
        payout.save()
        if paid:
            _to_treatment(payout)
    logger.warning("Payout %s resolved by hand by %s: %s", payout.reference, resolved_by, payout.status)
    return payout


def _to_treatment(payout: Payout) -> None:
    Patient.objects.filter(
        pk=payout.patient_id, status__in=[Patient.Status.FUNDING, Patient.Status.FULLY_FUNDED]
    ).update(status=Patient.Status.IN_TREATMENT)


def payout_callback(*, event: CallbackEvent, url_token: str, body: bytes) -> tuple[int, dict, str]:
    """A B2C result or queue-timeout callback. Returns (HTTP status, body, error code)."""
    provider: MpesaProvider = get_provider("mpesa")
    event.trust = provider.authenticate_callback(
        event.kind, body, event.headers, url_token, provider.b2c_token, client_ip=event.client_ip
    )
    if event.trust == CallbackTrust.REJECTED:
        callback_event_mark(event, CallbackEvent.Status.REJECTED, error="authentication failed")
        return 401, {"message": "Callback authentication failed."}, "AUTH_REQUIRED"
    try:
        result = provider.parse_b2c_result(body)
    except CallbackMalformed as exc:
        callback_event_mark(event, CallbackEvent.Status.REJECTED, error=f"malformed: {exc}")
        return 400, {"message": f"Malformed B2C callback: {exc}."}, "INVALID_FORMAT"
    event.our_reference = result.originator_conversation_id[:64]
    event.provider_reference = result.conversation_id[:100]
    if event.status == CallbackEvent.Status.DUPLICATE:
        return 200, ACK, ""
    if event.trust != CallbackTrust.TRUSTED:
        callback_event_mark(event, CallbackEvent.Status.REVIEW, error="B2C callback without the URL token")
        return 200, ACK, ""
    with transaction.atomic():
        payout = (
            Payout.objects.select_for_update().filter(reference=result.originator_conversation_id).first()
            or Payout.objects.select_for_update().filter(conversation_id=result.conversation_id or None).first()
        )
        if payout is None:
            callback_event_mark(event, CallbackEvent.Status.REJECTED, error="unknown payout")
            return 404, {"message": "No payout with this conversation id."}, "NOT_FOUND"
        detail = _apply(payout, result, timeout=event.kind == B2C_TIMEOUT)
    callback_event_mark(
        event, CallbackEvent.Status.PROCESSED if detail == "applied" else CallbackEvent.Status.IGNORED, error=detail
    )
    return 200, ACK, ""


def _apply(payout: Payout, result, *, timeout: bool) -> str:
    if payout.status in TERMINAL:
        if payout.status != Payout.Status.PAID and result.succeeded and not timeout:
            payout.needs_review = True  # money moved after we called it failed: a human must look
            payout.save(update_fields=["needs_review", "updated_at"])
        return f"already {payout.status}"
    payout.result_code = result.result_code[:20]
    payout.result_desc = result.result_desc[:255]
    if timeout:
        payout.status = Payout.Status.AMBIGUOUS
        payout.needs_review = True
        payout.save(update_fields=["status", "result_code", "result_desc", "needs_review", "updated_at"])
        logger.warning("Payout %s timed out in M-Pesa's queue: ambiguous until its result", payout.reference)
        return "applied"
    if result.amount is not None and result.succeeded and result.amount != payout.amount:
        payout.needs_review = True
    payout.status = Payout.Status.PAID if result.succeeded else Payout.Status.FAILED
    payout.receipt = result.transaction_id[:100]
    payout.completed_at = timezone.now()
    if not payout.conversation_id and result.conversation_id:
        payout.conversation_id = result.conversation_id
    payout.save()
    if payout.status == Payout.Status.PAID:
        _to_treatment(payout)
    logger.info("Payout %s %s (%s %s)", payout.reference, payout.status, result.result_code, result.result_desc)
    return "applied"


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
