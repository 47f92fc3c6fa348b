"""Refunds of completed donations, on every rail that has them, under maker-checker.

request (staff user A, `payments.add_refund`) → approve (staff user B ≠ A, `payments.approve_refund`) → the
provider is asked once → its result (callback or status query) → `refunded`: the ledger gets reversing rows
(donor.services.donation_refund), the patient's funding goes down, a fully funded patient below the goal
raises funds again, the donor gets a notice. Never more than was paid, never twice (one live refund per
donation, checked under the donation's lock; the ledger's reversal rows are unique per donation and target),
never more than the patient's funds not yet paid out. A request that timed out after sending is
`ambiguous`: never re-sent, settled by a later result or by a person (`payments.resolve_refund`).

Providers without a refund API (AzamPay has none: docs/providers/azampay.md) are refunded outside it — a
mobile-money or bank transfer back to the donor — and the checker records it with its receipt (`manual`).
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

from donor.models import Donation
from donor.notifications import donation_notify_queue
from donor.services import LedgerRefused, donation_refund
from patients.services import patient_lock
from payments.callback_urls import callback_url
from payments.models import CallbackEvent, Payment, Payout, Refund, fit
from payments.providers.base import (
    CallbackMalformed,
    CallbackRole,
    CallbackTrust,
    PaymentProvider,
    PaymentStatus,
    ProviderError,
    RefundRequest,
    RefundResult,
    Refunds,
)
from payments.providers.registry import PROVIDER_CLASSES, get_capable, get_provider
from payments.services.audit import audit_record
from payments.services.inbox import CallbackOutcome, callback_event_mark, event_trust, url_token_check
from payments.services.payments import method_label

logger = logging.getLogger("payments.refunds")

STUCK_SENDING_AFTER = timedelta(minutes=10)
REFUND_CHECK_EVERY = timedelta(minutes=5)  # how often reconciliation asks about a refund awaiting its result
PAYOUTS_COMMITTED = (
    Payout.Status.REQUESTED,
    Payout.Status.SENDING,
    Payout.Status.SENT,
    Payout.Status.PAID,
    Payout.Status.AMBIGUOUS,
)
Staff = User


class RefundRefused(Exception):
    """The request breaks a rule. `message` is shown to the staff user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def refund_supported(provider_code: str) -> bool:
    """Whether the provider can refund through its API (else a refund is made outside and recorded)."""
    cls = PROVIDER_CLASSES.get(provider_code)
    return cls is not None and issubclass(cls, Refunds)


def _require(user: Staff, permission: str, action: str) -> None:
    if not (getattr(user, "is_staff", False) and user.is_active and user.has_perm(permission)):
        raise RefundRefused(f"Only staff users with the {permission!r} permission may {action}.")


def _paid_payment(donation: Donation) -> Payment:
    payment = donation.payments.filter(status=Payment.Status.SUCCEEDED).order_by("pk").first()
    if payment is None:
        raise RefundRefused(f"Donation {donation.reference} has no completed payment to refund.")
    return payment


def _patient_share_available(donation: Donation) -> Decimal | None:
    """The patient's funds not yet paid out or committed to a payout or another refund; None: no patient."""
    if donation.patient is None:
        return None
    patient = donation.patient
    payouts = Payout.objects.filter(patient=patient, status__in=PAYOUTS_COMMITTED).aggregate(t=Sum("amount"))["t"]
    refunds = (
        Refund.objects.filter(donation__patient=patient, status__in=Refund.AWAITING_RESULT + (Refund.Status.REQUESTED,))
        .exclude(donation=donation)
        .aggregate(t=Sum("amount"))["t"]
    )
    return patient.funding_received - (payouts or Decimal("0")) - (refunds or Decimal("0"))


def refund_check(*, donation: Donation, amount: Decimal, requested_by: Staff) -> Payment:
    """The rules of a refund request, without locking (the admin form shows them before saving)."""
    _require(requested_by, "payments.add_refund", "request refunds")
    if donation.status != Donation.Status.COMPLETED:
        raise RefundRefused(f"Donation {donation.reference} is {donation.status}; only a completed one is refunded.")
    payment = _paid_payment(donation)
    amount = Decimal(amount)
    if amount <= 0:
        raise RefundRefused("A refund is a positive amount.")
    if amount > donation.amount:
        raise RefundRefused(f"At most {donation.currency} {donation.amount:,} was paid: never refund more.")
    if refund_supported(payment.provider):
        provider = get_capable(payment.provider, Refunds)
        if amount != donation.amount and not provider.refunds_partial:
            raise RefundRefused(f"{PROVIDER_CLASSES[payment.provider].display_name} refunds the whole payment only.")
    if Refund.objects.filter(donation=donation, status__in=Refund.LIVE).exists():
        raise RefundRefused(f"Donation {donation.reference} already has a refund.")
    available = _patient_share_available(donation)
    if available is not None and amount > available:
        raise RefundRefused(
            f"Only {donation.currency} {available:,} of {donation.patient}'s funds is not yet paid out: "
            "this refund cannot come from the patient's funds."
        )
    return payment


def refund_request(*, donation: Donation, amount: Decimal, reason: str, requested_by: Staff) -> Refund:
    """The maker's step: record the intent. Nothing is sent."""
    refund_check(donation=donation, amount=amount, requested_by=requested_by)
    with transaction.atomic():
        locked = Donation.objects.select_for_update().get(pk=donation.pk)  # one live refund per donation
        payment = refund_check(donation=locked, amount=amount, requested_by=requested_by)
        refund = Refund.objects.create(
            reference=f"{settings.DONATION_REFERENCE_PREFIX}-RF-{uuid.uuid4().hex[:16]}",
            donation=locked,
            payment=payment,
            provider=payment.provider,
            amount=Decimal(amount),
            currency=locked.currency,
            reason=fit(Refund, "reason", reason),
            manual=not refund_supported(payment.provider),
            requested_by=requested_by,
        )
        audit_record(
            actor=requested_by, action="refund.request", target=f"refund {refund.reference}",
            detail=f"{refund.currency} {refund.amount} of {locked.reference}",
        )  # fmt: skip
    logger.info("Refund %s requested by %s: %s %s of %s", refund.reference, requested_by, refund.currency, amount,
                donation.reference)  # fmt: skip
    return refund


def refund_approve(*, refund_id: int, approved_by: Staff, receipt: str = "") -> Refund:
    """The checker's step: a different staff user approves; only then is the provider asked, once.

    A manual refund (no refund API) needs the receipt of the transfer made outside: it is recorded refunded.
    """
    _require(approved_by, "payments.approve_refund", "approve refunds")
    with transaction.atomic():
        refund = Refund.objects.select_for_update().get(pk=refund_id)
        if refund.requested_by_id == approved_by.pk:
            raise RefundRefused("A refund must be approved by someone other than its requester.")
        if refund.status != Refund.Status.REQUESTED:
            raise RefundRefused(f"Refund {refund.reference} is {refund.status}, not awaiting approval.")
        if refund.manual and not receipt.strip():
            raise RefundRefused(
                f"{PROVIDER_CLASSES[refund.provider].display_name} has no refund API: pay the donor back outside it, "
                "then approve with the transfer's receipt."
            )
        if refund.donation.patient_id:
            patient_lock(patient_id=refund.donation.patient_id)
        available = _patient_share_available(refund.donation)
        if available is not None and refund.amount > available:
            raise RefundRefused("The patient's funds not yet paid out no longer cover this refund.")
        refund.status = Refund.Status.SENDING  # claimed: a second approval cannot send it again
        refund.approved_by = approved_by
        refund.approved_at = timezone.now()
        refund.save(update_fields=["status", "approved_by", "approved_at", "updated_at"])
        audit_record(
            actor=approved_by, action="refund.approve", target=f"refund {refund.reference}",
            detail=f"recorded as paid back outside ({receipt.strip()})" if refund.manual else "sending",
        )  # fmt: skip
    if refund.manual:
        return _settle(refund, RefundResult(refund.reference, "", PaymentStatus.SUCCEEDED, "refunded by hand"),
                       receipt=receipt.strip())  # fmt: skip
    return _send(refund)


def _send(refund: Refund) -> Refund:
    provider = get_capable(refund.provider, Refunds)
    assert isinstance(provider, PaymentProvider)
    chosen = provider.refund_reference_before_request()
    if chosen:  # stored before the request leaves, so the status query can always ask about it
        Refund.objects.filter(pk=refund.pk).update(provider_reference=chosen)
    secret = provider.callback_secret(_kind(provider, CallbackRole.REFUND_RESULT)) or ""
    payment = refund.payment
    try:
        accepted = provider.send_refund(
            RefundRequest(
                reference=refund.reference,
                payment_reference=payment.provider_reference or "",
                amount=refund.amount,
                currency=refund.currency,
                msisdn=payment.msisdn,
                result_url=callback_url(provider, CallbackRole.REFUND_RESULT, secret),
                timeout_url=callback_url(provider, CallbackRole.REFUND_TIMEOUT, secret),
                reason=refund.reason or f"Refund of {refund.donation.reference}",
                provider_reference=chosen,
                payment_our_reference=payment.reference,
                payment_receipt=payment.receipt,
            )
        )
    except ProviderError as error:
        # Refused, or never reached → failed, nothing moved. Timed out after sending → ambiguous, never re-sent.
        status = Refund.Status.AMBIGUOUS if error.ambiguous else Refund.Status.FAILED
        Refund.objects.filter(pk=refund.pk, status=Refund.Status.SENDING).update(
            status=status,
            result_desc=fit(Refund, "result_desc", error.message),
            needs_review=status == Refund.Status.AMBIGUOUS,
            completed_at=timezone.now() if status == Refund.Status.FAILED else None,
            next_check_at=timezone.now() + REFUND_CHECK_EVERY if status == Refund.Status.AMBIGUOUS else None,
        )
        logger.warning("Refund %s not sent (%s): %s", refund.reference, status, error.message)
        refund.refresh_from_db()
        return refund
    Refund.objects.filter(pk=refund.pk, status=Refund.Status.SENDING).update(
        status=Refund.Status.SENT, sent_at=timezone.now(), next_check_at=timezone.now() + REFUND_CHECK_EVERY
    )
    if accepted.provider_reference:
        Refund.objects.filter(pk=refund.pk, provider_reference__isnull=True).update(
            provider_reference=fit(Refund, "provider_reference", accepted.provider_reference)
        )
    refund.refresh_from_db()
    logger.info("Refund %s sent to %s (%s)", refund.reference, refund.provider, refund.provider_reference or "-")
    if accepted.status in (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED):
        # The provider answered with the result itself (Airtel, which has no refund enquiry): settle it now.
        result = RefundResult(refund.reference, accepted.provider_reference, accepted.status, accepted.message)
        return _settle(refund, result, receipt=accepted.receipt)
    return refund


def _kind(provider: PaymentProvider, role: CallbackRole) -> str:
    route = provider.route_for(role)
    return route.kind if route else ""


def refund_apply(*, refund_id: int, result: RefundResult, receipt: str = "") -> Refund:
    """Apply a provider's verdict (callback or status query) to a refund awaiting one. Idempotent."""
    refund = Refund.objects.get(pk=refund_id)
    return _settle(refund, result, receipt=receipt)


def _settle(refund: Refund, result: RefundResult, *, receipt: str = "") -> Refund:
    if result.status not in (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED):
        return refund  # still pending or unknown: a later result or the next check decides
    with transaction.atomic():
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        if refund.status not in Refund.AWAITING_RESULT:
            if refund.status != Refund.Status.REFUNDED and result.status == PaymentStatus.SUCCEEDED:
                Refund.objects.filter(pk=refund.pk).update(needs_review=True)  # money moved after we said no
            return refund
        refund.result_desc = fit(Refund, "result_desc", result.message)
        refund.completed_at = timezone.now()
        refund.next_check_at = None
        refund.needs_review = False
        if result.status == PaymentStatus.SUCCEEDED:
            refund.status = Refund.Status.REFUNDED
            refund.receipt = fit(Refund, "receipt", receipt or result.receipt or result.provider_reference)
            try:
                donation_refund(donation_id=refund.donation_id, amount=refund.amount)
            except LedgerRefused as refused:  # the money went back; the ledger could not follow: a person looks
                refund.needs_review = True
                refund.result_desc = fit(Refund, "result_desc", f"refunded, ledger refused: {refused}")
                logger.error("Refund %s: %s", refund.reference, refused)
        else:
            refund.status = Refund.Status.FAILED
        refund.save(
            update_fields=[
                "status", "receipt", "result_desc", "completed_at", "next_check_at", "needs_review", "updated_at",
            ]
        )  # fmt: skip
        if refund.status == Refund.Status.REFUNDED:
            donation_id = refund.donation_id
            transaction.on_commit(lambda: _notify(donation_id))
    logger.info("Refund %s %s (%s)", refund.reference, refund.status, result.message)
    return refund


def _notify(donation_id: int) -> None:
    refund = Refund.objects.filter(donation_id=donation_id).order_by("-pk").first()
    rail = method_label(refund.payment.provider, refund.payment.channel) if refund else ""
    donation_notify_queue(donation_id, rail, refund=True)


def refund_cancel(*, refund_id: int, cancelled_by: Staff) -> Refund:
    """Withdraw a request nobody has approved yet."""
    if not (cancelled_by.has_perm("payments.add_refund") or cancelled_by.has_perm("payments.approve_refund")):
        raise RefundRefused("Only staff users who may request or approve refunds may cancel them.")
    with transaction.atomic():
        refund = Refund.objects.select_for_update().get(pk=refund_id)
        if refund.status != Refund.Status.REQUESTED:
            raise RefundRefused(f"Refund {refund.reference} is {refund.status}; only a request can be cancelled.")
        refund.status = Refund.Status.CANCELLED
        refund.result_desc = fit(Refund, "result_desc", f"Cancelled by {cancelled_by}")
        refund.completed_at = timezone.now()
        refund.save(update_fields=["status", "result_desc", "completed_at", "updated_at"])
        audit_record(actor=cancelled_by, action="refund.cancel", target=f"refund {refund.reference}")
    return refund


def refund_resolve(*, refund_id: int, refunded: bool, resolved_by: Staff, receipt: str = "") -> Refund:
    """Settle an ambiguous (or stuck) refund by hand after checking the provider's portal. Never re-sends."""
    _require(resolved_by, "payments.resolve_refund", "resolve refunds")
    if refunded and not receipt.strip():
        raise RefundRefused("Give the provider's receipt of the refund seen on its portal.")
    refund = Refund.objects.get(pk=refund_id)
    stuck = refund.status == Refund.Status.SENDING and (refund.approved_at or refund.updated_at) < (
        timezone.now() - STUCK_SENDING_AFTER
    )
    if refund.status not in (Refund.Status.AMBIGUOUS, Refund.Status.SENT) and not stuck:
        raise RefundRefused(f"Refund {refund.reference} is {refund.status}; nothing to resolve.")
    status = PaymentStatus.SUCCEEDED if refunded else PaymentStatus.FAILED
    settled = _settle(
        refund, RefundResult(refund.reference, "", status, f"Resolved by hand by {resolved_by}"), receipt=receipt
    )
    audit_record(
        actor=resolved_by, action="refund.resolve", target=f"refund {refund.reference}",
        detail=f"{settled.status} (receipt {receipt or '-'})",
    )  # fmt: skip
    logger.warning("Refund %s resolved by hand by %s: %s", refund.reference, resolved_by, settled.status)
    return settled


# --- callbacks and polling ------------------------------------------------------------------------------


def refund_callback(*, event: CallbackEvent, body: bytes, live: bool) -> CallbackOutcome:
    """A refund result (or queue timeout) callback, applied to the one refund it names."""
    provider = get_provider(event.provider)
    if not isinstance(provider, Refunds):
        callback_event_mark(event, CallbackEvent.Status.REVIEW, error=f"{event.provider} has no refunds")
        return CallbackOutcome("review", 200, "Received; held for review.")
    if event_trust(event, provider, body, url_token_check(event, provider), live) == CallbackTrust.REJECTED:
        callback_event_mark(event, CallbackEvent.Status.REJECTED, error="authentication failed")
        return CallbackOutcome("unauthenticated", 401, "Callback authentication failed.")
    try:
        result = provider.parse_refund_result(event.kind, body)
    except CallbackMalformed as exc:
        callback_event_mark(event, CallbackEvent.Status.REJECTED, error=f"malformed: {exc}")
        return CallbackOutcome("malformed", 400, f"Malformed refund callback: {exc}.")
    event.our_reference = result.our_reference
    event.provider_reference = result.provider_reference
    refund = _refund_for(event.provider, result)
    if refund is None:
        callback_event_mark(event, CallbackEvent.Status.REJECTED, error="unknown refund")
        return CallbackOutcome("unknown_reference", 404, "No refund with this reference.")
    timeout = provider.callback_role(event.kind) == CallbackRole.REFUND_TIMEOUT
    if timeout:
        Refund.objects.filter(pk=refund.pk, status__in=[Refund.Status.SENDING, Refund.Status.SENT]).update(
            status=Refund.Status.AMBIGUOUS, needs_review=True, next_check_at=timezone.now() + REFUND_CHECK_EVERY
        )
        callback_event_mark(event, CallbackEvent.Status.PROCESSED, error="queue timeout: ambiguous")
        return CallbackOutcome("accepted", 200, "Callback received")
    if event.trust != CallbackTrust.TRUSTED:
        # Unsigned: ask the provider when it can be asked; otherwise a person decides.
        checked = _ask(provider, refund)
        if checked is None or checked.status != result.status:
            callback_event_mark(event, CallbackEvent.Status.REVIEW, error="refund result not confirmed")
            return CallbackOutcome("review", 200, "Received; held for review.")
        result = checked
    settled = _settle(refund, result)
    callback_event_mark(
        event, CallbackEvent.Status.PROCESSED if settled.status != refund.status else CallbackEvent.Status.IGNORED
    )
    return CallbackOutcome("accepted", 200, "Callback received")


def _refund_for(provider_code: str, result: RefundResult) -> Refund | None:
    """Our reference, else the provider's id; an empty id never matches anything."""
    if result.our_reference:
        refund = Refund.objects.filter(reference=result.our_reference).first()
        if refund is not None:
            return refund
    if result.provider_reference:
        return Refund.objects.filter(provider=provider_code, provider_reference=result.provider_reference).first()
    return None


def _ask(provider: Refunds, refund: Refund) -> RefundResult | None:
    try:
        return provider.refund_status(reference=refund.reference, provider_reference=refund.provider_reference or "")
    except ProviderError as error:
        logger.warning("Refund %s: status query failed: %s", refund.reference, error.message)
        return None


def refunds_reconcile(*, limit: int = 200) -> int:
    """Ask providers about refunds awaiting a result whose check is due. Returns how many were asked."""
    now = timezone.now()
    due = Refund.objects.filter(status__in=[Refund.Status.SENT, Refund.Status.AMBIGUOUS], next_check_at__lte=now)
    asked = 0
    for refund in due.order_by("next_check_at")[:limit]:
        Refund.objects.filter(pk=refund.pk).update(next_check_at=now + REFUND_CHECK_EVERY)
        if not refund_supported(refund.provider):
            continue
        result = _ask(get_capable(refund.provider, Refunds), refund)
        asked += 1
        if result is not None:
            _settle(refund, result)
    return asked
