"""Payouts to treatment partners, under maker-checker, through the partner's payout provider (any provider
with the `Payouts` capability: M-Pesa B2C today).

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
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from patients.models import Patient
from patients.services import patient_lock
from payments.callback_urls import callback_url
from payments.models import CallbackEvent, Payout, Refund, fit
from payments.providers.base import (
    CallbackMalformed,
    CallbackRole,
    CallbackTrust,
    PaymentProvider,
    PayoutRequest,
    PayoutResult,
    Payouts,
    ProviderError,
)
from payments.providers.registry import PROVIDER_CLASSES, MissingCapability, UnknownProvider, get_capable
from payments.services.audit import audit_record
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
# A payout still `sending` after this long lost its answer (the process died mid-request): a person may
# resolve it after checking the provider's portal.
STUCK_SENDING_AFTER = timedelta(minutes=10)
# How often reconciliation asks a provider with a payout status query about a payout awaiting its result
# (MTN sends its callback once and never again).
PAYOUT_CHECK_EVERY = timedelta(minutes=5)
Staff = User  # a staff member acting in the admin (the project uses Django's user model)


class PayoutRefused(Exception):
    """The request breaks a rule (maker-checker, limit, state). `message` is shown to the staff user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def payout_available(*, patient: Patient, exclude_id: int | None = None) -> Decimal:
    """Funds received and not yet paid out, committed to a payout in flight, or being refunded."""
    committed = Payout.objects.filter(patient=patient, status__in=COMMITTED)
    if exclude_id is not None:
        committed = committed.exclude(pk=exclude_id)
    used = committed.aggregate(total=Sum("amount"))["total"] or Decimal("0")
    refunding = Refund.objects.filter(
        donation__patient=patient, status__in=(Refund.Status.REQUESTED, *Refund.AWAITING_RESULT)
    ).aggregate(total=Sum("amount"))["total"] or Decimal("0")
    return patient.funding_received - used - refunding


def _require(user: Staff, permission: str, action: str, *alternatives: str) -> None:
    allowed = getattr(user, "is_staff", False) and user.is_active
    if not (allowed and any(user.has_perm(p) for p in (permission, *alternatives))):
        raise PayoutRefused(f"Only staff users with the {permission!r} permission may {action}.")


def payout_provider(patient: Patient) -> Payouts:
    """The provider that pays this patient's treatment partner, in the patient's currency."""
    partner = patient.treatment_partner
    if partner is None or not partner.payout_provider:
        raise PayoutRefused("The patient's treatment partner has no payout provider.")
    name = getattr(PROVIDER_CLASSES.get(partner.payout_provider), "display_name", partner.payout_provider)
    try:
        provider = get_capable(partner.payout_provider, Payouts)
    except (UnknownProvider, MissingCapability) as exc:
        raise PayoutRefused(f"{name} payouts are not available here.") from exc
    if not partner.payout_msisdn:
        raise PayoutRefused(f"The patient's treatment partner has no {name} payout number.")
    if patient.currency not in provider.payout_currencies:
        currencies = ", ".join(sorted(provider.payout_currencies))
        raise PayoutRefused(f"{name} payouts are in {currencies}; this patient is funded in {patient.currency}.")
    return provider


def payout_check(*, patient: Patient, amount: Decimal, requested_by: Staff) -> None:
    """The rules of a payout request, without locking (the admin form shows them before saving)."""
    _require(requested_by, "payments.add_payout", "request payouts")
    provider = payout_provider(patient)
    amount = Decimal(amount)
    if amount <= 0 or (provider.payout_whole_amounts_only and amount != amount.to_integral_value()):
        raise PayoutRefused("A payout is a whole, positive amount.")
    available = payout_available(patient=patient)
    if amount > available:
        raise PayoutRefused(f"Only {patient.currency} {available:,} of {patient.code}'s funds is not yet paid out.")


def payout_request(*, patient: Patient, amount: Decimal, requested_by: Staff) -> Payout:
    """The maker's step: record the intent. Nothing is sent."""
    payout_check(patient=patient, amount=amount, requested_by=requested_by)
    amount = Decimal(amount)
    partner = patient.treatment_partner
    assert partner is not None  # payout_check refused a patient without one
    with transaction.atomic():
        locked = patient_lock(patient_id=patient.pk)
        available = payout_available(patient=locked)
        if amount > available:
            raise PayoutRefused(f"Only {locked.currency} {available:,} of {locked.code}'s funds is not yet paid out.")
        payout = Payout.objects.create(
            reference=f"{settings.DONATION_REFERENCE_PREFIX}-PO-{uuid.uuid4().hex[:16]}",
            patient=locked,
            treatment_partner=partner,
            provider=partner.payout_provider,
            msisdn=partner.payout_msisdn,
            amount=amount,
            currency=locked.currency,
            requested_by=requested_by,
        )
        audit_record(
            actor=requested_by, action="payout.request", target=f"payout {payout.reference}",
            detail=f"{payout.currency} {amount} for {locked.code}",
        )  # fmt: skip
    logger.info(
        "Payout %s requested by %s: %s %s for %s", payout.reference, requested_by, payout.currency, amount, patient.code
    )
    return payout


def payout_approve(*, payout_id: int, approved_by: Staff) -> Payout:
    """The checker's step: a different staff user approves; only then is the payout sent, once."""
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
        audit_record(actor=approved_by, action="payout.approve", target=f"payout {payout.reference}", detail="sending")
    return _send(payout)


def _send(payout: Payout) -> Payout:
    provider = get_capable(payout.provider, Payouts)
    assert isinstance(provider, PaymentProvider)
    # The URLs carry the operator's secret; without one the results are held for review.
    secret = provider.callback_secret(_kind(provider, CallbackRole.PAYOUT_RESULT)) or ""
    chosen = provider.payout_reference_before_request(payout.reference)
    if chosen:  # MTN's id (our choice), Airtel's form of our reference: known before, stored before sending
        Payout.objects.filter(pk=payout.pk).update(conversation_id=fit(Payout, "conversation_id", chosen))
    try:
        accepted = provider.send_payout(
            PayoutRequest(
                reference=payout.reference,
                msisdn=payout.msisdn,
                amount=payout.amount,
                currency=payout.currency,
                result_url=callback_url(provider, CallbackRole.PAYOUT_RESULT, secret),
                timeout_url=callback_url(provider, CallbackRole.PAYOUT_TIMEOUT, secret),
                remarks=f"Treatment {payout.patient.code}",
                provider_reference=chosen,
            )
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
            next_check_at=timezone.now() + PAYOUT_CHECK_EVERY if status == Payout.Status.AMBIGUOUS else None,
        )
        logger.warning(
            "Payout %s not sent (%s): %s", payout.reference, status if moved else "already settled", error.message
        )
        payout.refresh_from_db()
        return payout
    Payout.objects.filter(pk=payout.pk, status=Payout.Status.SENDING).update(
        status=Payout.Status.SENT, sent_at=timezone.now(), next_check_at=timezone.now() + PAYOUT_CHECK_EVERY
    )
    if accepted.conversation_id:
        Payout.objects.filter(pk=payout.pk, conversation_id__isnull=True).update(
            conversation_id=fit(Payout, "conversation_id", accepted.conversation_id)
        )
    if accepted.result is not None and not accepted.result.pending:
        # The provider answered with the result itself (Airtel): apply it now rather than wait for a poll.
        with transaction.atomic():
            locked = Payout.objects.select_for_update().get(pk=payout.pk)
            if locked.status in AWAITING_RESULT:
                _apply(locked, accepted.result, timeout=False)
    payout.refresh_from_db()
    logger.info("Payout %s sent to %s (%s)", payout.reference, payout.provider, accepted.conversation_id)
    return payout


def payout_cancel(*, payout_id: int, cancelled_by: Staff) -> Payout:
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
        audit_record(actor=cancelled_by, action="payout.cancel", target=f"payout {payout.reference}")
    return payout


def payout_resolve(*, payout_id: int, paid: bool, resolved_by: Staff, receipt: str = "") -> Payout:
    """Settle an ambiguous payout by hand, after checking the provider's portal. Never re-sends anything.

    A payout stuck in `sending` (the process died while sending it) can be resolved once it has been stuck
    for STUCK_SENDING_AFTER."""
    _require(resolved_by, "payments.resolve_payout", "resolve payouts")
    if paid and not receipt.strip():
        raise PayoutRefused("Give the provider's receipt (transaction id) seen on its portal.")
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
        audit_record(
            actor=resolved_by, action="payout.resolve", target=f"payout {payout.reference}",
            detail=f"{payout.status} (receipt {payout.receipt or '-'})",
        )  # fmt: skip
        if paid:
            _to_treatment(payout)
    logger.warning("Payout %s resolved by hand by %s: %s", payout.reference, resolved_by, payout.status)
    return payout


def _to_treatment(payout: Payout) -> None:
    Patient.objects.filter(
        pk=payout.patient_id, status__in=[Patient.Status.FUNDING, Patient.Status.FULLY_FUNDED]
    ).update(status=Patient.Status.IN_TREATMENT)


def payout_callback(*, event: CallbackEvent, body: bytes, live: bool) -> CallbackOutcome:
    """A payout result or queue-timeout callback, applied to the one payout it names exactly."""
    provider = get_capable(event.provider, Payouts)
    assert isinstance(provider, PaymentProvider)
    timeout = provider.callback_role(event.kind) == CallbackRole.PAYOUT_TIMEOUT
    if event_trust(event, provider, body, url_token_check(event, provider), live) == CallbackTrust.REJECTED:
        callback_event_mark(event, CallbackEvent.Status.REJECTED, error="authentication failed")
        return CallbackOutcome("unauthenticated", 401, "Callback authentication failed.")
    try:
        result = provider.parse_payout_result(event.kind, body)
    except CallbackMalformed as exc:
        callback_event_mark(event, CallbackEvent.Status.REJECTED, error=f"malformed: {exc}")
        return CallbackOutcome("malformed", 400, f"Malformed payout callback: {exc}.")
    event.our_reference = result.our_reference
    event.provider_reference = result.provider_reference
    if event.trust != CallbackTrust.TRUSTED:
        # Unsigned (MTN signs nothing) or without our secret: believe it only if the provider's payout status
        # query says the same; a provider without such a query leaves it to a person.
        confirmed = _confirmed(provider, result)
        if confirmed is None:
            callback_event_mark(event, CallbackEvent.Status.REVIEW, error="payout callback not confirmed")
            return CallbackOutcome("review", 200, "Received; held for review.")
        result = confirmed
    with transaction.atomic():
        payout = _payout_for(result)
        if payout is None:
            callback_event_mark(event, CallbackEvent.Status.REJECTED, error="unknown payout")
            return CallbackOutcome("unknown_reference", 404, "No payout with this conversation id.")
        if payout.status not in AWAITING_RESULT:
            if _already_says(payout, result, timeout=timeout):
                # The same result again (a copy of a delivery whose first handling died after the commit).
                callback_event_mark(
                    event, CallbackEvent.Status.IGNORED, error=f"payout {payout.reference} already {payout.status}"
                )
                return CallbackOutcome("ignored", 200, "Already applied.")
            if payout.status != Payout.Status.PAID and result.succeeded and not timeout:
                # Money moved for a payout we never sent or already called failed: a person must look.
                Payout.objects.filter(pk=payout.pk).update(needs_review=True)
            callback_event_mark(
                event, CallbackEvent.Status.REVIEW, error=f"result for payout {payout.reference} in {payout.status}"
            )
            return CallbackOutcome("review", 200, "Received; held for review.")
        _apply(payout, result, timeout=timeout)
    callback_event_mark(event, CallbackEvent.Status.PROCESSED)
    return CallbackOutcome("accepted", 200, "Callback received")


def _confirmed(provider: Payouts, claimed: PayoutResult) -> PayoutResult | None:
    """The provider's own word on the payout a callback names, when it agrees with the callback. No lock is
    held over the status query (HTTP); the result is applied under the lock afterwards."""
    payout = _payout_for(claimed, lock=False)
    if payout is None:
        return None
    try:
        said = provider.payout_status(reference=payout.reference, provider_reference=payout.conversation_id or "")
    except ProviderError as error:
        logger.warning("Payout %s: status query failed: %s", payout.reference, error.message)
        return None
    if said is None or said.pending or said.succeeded != claimed.succeeded:
        return None
    return said


def _kind(provider: PaymentProvider, role: CallbackRole) -> str:
    route = provider.route_for(role)
    return route.kind if route else ""


def _already_says(payout: Payout, result: PayoutResult, *, timeout: bool) -> bool:
    """The payout is settled exactly as this result says: paid with its receipt, or failed with its code."""
    if timeout:
        return False
    if payout.status == Payout.Status.PAID:
        return result.succeeded and (not result.receipt or result.receipt[:100] == payout.receipt)
    return payout.status == Payout.Status.FAILED and not result.succeeded and result.code == payout.result_code


def _payout_for(result: PayoutResult, *, lock: bool = True) -> Payout | None:
    """The payout a result names: our reference, else the provider's conversation id. An empty id never
    matches anything (a filter on an empty id would match every payout without one). `lock`: take its row
    lock (inside the caller's transaction)."""
    payouts = Payout.objects.select_for_update() if lock else Payout.objects.all()
    if result.our_reference:
        payout = payouts.filter(reference=result.our_reference).first()
        if payout is not None:
            return payout
    if result.provider_reference:
        return payouts.filter(conversation_id=result.provider_reference).first()
    return None


def _apply(payout: Payout, result: PayoutResult, *, timeout: bool) -> None:
    """The caller holds the payout's row lock and has checked that it awaits a result."""
    payout.result_code = fit(Payout, "result_code", result.code)
    payout.result_desc = fit(Payout, "result_desc", result.description)
    if timeout:
        payout.status = Payout.Status.AMBIGUOUS
        payout.needs_review = True
        payout.save(update_fields=["status", "result_code", "result_desc", "needs_review", "updated_at"])
        logger.warning(
            "Payout %s timed out in %s's queue: ambiguous until its result", payout.reference, payout.provider
        )
        return
    # A definite result settles what made it ambiguous; only a wrong amount still needs a person.
    payout.needs_review = result.amount is not None and result.succeeded and result.amount != payout.amount
    payout.status = Payout.Status.PAID if result.succeeded else Payout.Status.FAILED
    payout.receipt = fit(Payout, "receipt", result.receipt)
    payout.completed_at = timezone.now()
    if not payout.conversation_id and result.provider_reference:
        payout.conversation_id = fit(Payout, "conversation_id", result.provider_reference)
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
    logger.info("Payout %s %s (%s %s)", payout.reference, payout.status, result.code, result.description)


def payouts_reconcile(*, limit: int = 200) -> int:
    """Ask providers that have a payout status query about payouts awaiting a result. Returns how many."""
    now = timezone.now()
    due = Payout.objects.filter(status__in=[Payout.Status.SENT, Payout.Status.AMBIGUOUS], next_check_at__lte=now)
    asked = 0
    for payout in due.order_by("next_check_at")[:limit]:
        Payout.objects.filter(pk=payout.pk).update(next_check_at=now + PAYOUT_CHECK_EVERY)
        provider = get_capable(payout.provider, Payouts)
        try:
            result = provider.payout_status(reference=payout.reference, provider_reference=payout.conversation_id or "")
        except ProviderError as error:
            logger.warning("Payout %s: status query failed: %s", payout.reference, error.message)
            continue
        if result is None:
            continue  # this provider has no payout status query (M-Pesa B2C: its result callback or a person)
        asked += 1
        if result.pending:
            continue
        with transaction.atomic():
            locked = Payout.objects.select_for_update().get(pk=payout.pk)
            if locked.status in (Payout.Status.SENT, Payout.Status.AMBIGUOUS):
                _apply(locked, result, timeout=False)
    return asked
