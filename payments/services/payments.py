"""Moving a payment through its state machine (the only place a payment changes state), and asking its provider.

Starting one (the charge request) is in payment_start.py; its names are imported here too, where callers have
always found them."""

import logging
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from django.conf import settings
from django.db import transaction
from django.tasks import task
from django.utils import timezone

from donor.notifications import donation_notify_queue, notices_record
from donor.services import donation_cancel, donation_complete, donation_expire, donation_fail
from payments.models import Payment, PaymentHistory
from payments.providers.base import (
    Collections,
    PaymentRef,
    PaymentStatus,
    ProviderError,
    ProviderResult,
)
from payments.providers.registry import PROVIDER_CLASSES, get_capable
from payments.services.audit import history_record

# Re-exported: callers have always imported these from here.
from payments.services.payment_start import PaymentStartFailed, ladder_step, payment_start  # noqa: F401

logger = logging.getLogger("payments")

TERMINAL_RESULTS = {PaymentStatus.SUCCEEDED, PaymentStatus.FAILED, PaymentStatus.CANCELLED, PaymentStatus.EXPIRED}
UNPAID_DONATION_ENDINGS = {
    PaymentStatus.FAILED: donation_fail,
    PaymentStatus.CANCELLED: donation_cancel,
    PaymentStatus.EXPIRED: donation_expire,
}
FRIENDLY_REASONS = {
    PaymentStatus.FAILED: "The payment did not go through.",
    PaymentStatus.CANCELLED: "The payment was cancelled on the phone.",
    PaymentStatus.EXPIRED: "The payment request timed out before it was confirmed.",
}


class Applied(StrEnum):
    """What `payment_apply_result` did with a provider's word (equal to the strings it always answered)."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    CONFLICT = "conflict"
    REVIEW = "review"
    PENDING = "pending"


@dataclass(frozen=True)
class ApplyOutcome:
    changed: bool
    status: Applied
    detail: str = ""


def payment_apply_result(*, payment_id: int, result: ProviderResult, verified: bool, cause: str = "") -> ApplyOutcome:
    """Move a payment to the state the provider reports, once, under the payment's row lock.

    `verified` means the result comes from an authenticated callback or the provider's status API.
    Amount, currency and reference must match what we asked for; otherwise nothing is applied and the
    caller sends the event to review.
    """
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        mismatch = result_mismatch(payment, result)
        if mismatch:
            logger.error("Payment %s: %s; not applied, sent to review", payment.reference, mismatch)
            return ApplyOutcome(False, Applied.REVIEW, mismatch)
        if result.status not in TERMINAL_RESULTS:
            _remember_provider_reference(payment, result)
            return ApplyOutcome(False, Applied.PENDING, f"provider reports {result.status}")
        if not verified:
            return ApplyOutcome(False, Applied.REVIEW, "unverified result")

        if payment.status == result.status:
            return ApplyOutcome(False, Applied.DUPLICATE, f"already {payment.status}")
        if payment.status == Payment.Status.SUCCEEDED:
            logger.warning(
                "Payment %s conflict: succeeded, then provider said %s (%s); ignored",
                payment.reference,
                result.status,
                result.message,
            )
            return ApplyOutcome(False, Applied.CONFLICT, f"already succeeded; ignored {result.status}")
        if payment.is_terminal and result.status != PaymentStatus.SUCCEEDED:
            return ApplyOutcome(False, Applied.IGNORED, f"already {payment.status}; ignored {result.status}")

        late = payment.is_terminal  # a verified success after failed/expired: the money moved
        previous = payment.status
        payment.status = result.status
        payment.receipt = result.receipt[:100] or payment.receipt
        payment.failure_reason = "" if result.status == PaymentStatus.SUCCEEDED else result.message[:255]
        payment.completed_at = timezone.now()
        payment.next_check_at = None
        fields = ["status", "receipt", "failure_reason", "completed_at", "next_check_at", "updated_at"]
        if result.provider_reference and not payment.provider_reference:
            payment.provider_reference = result.provider_reference
            fields.append("provider_reference")
        if late:
            payment.needs_review = True
            fields.append("needs_review")
        payment.save(update_fields=fields)

        if result.status == PaymentStatus.SUCCEEDED:
            completion = donation_complete(donation_id=payment.donation_id)
            if not completion.credited:
                # Another payment already paid this donation: this money moved too but has nowhere to go
                # on its own. Recorded as succeeded, never credited twice, and shown to a person (refund it
                # or credit it as a new gift).
                Payment.objects.filter(pk=payment.pk).update(needs_review=True)
                logger.error(
                    "Payment %s succeeded but donation %s was already paid by another payment; flagged for review",
                    payment.reference,
                    completion.donation.reference,
                )
        else:
            reason = result.message or FRIENDLY_REASONS[result.status]
            UNPAID_DONATION_ENDINGS[result.status](donation_id=payment.donation_id, reason=reason)
        history_record(
            payment_id=payment.pk,
            kind=PaymentHistory.Kind.TRANSITION,
            summary=f"{previous} → {result.status}" + (" (late: flagged for review)" if late else ""),
            cause=cause,
        )
        donation_id, rail = payment.donation_id, method_label(payment.provider, payment.channel)
        notices_record(donation_id=donation_id, rail=rail)  # the outbox: commits with the credit, or not at all
        transaction.on_commit(lambda: donation_notify_queue(donation_id, rail))
    logger.info(
        "Payment %s %s -> %s%s",
        payment.reference,
        previous,
        result.status,
        " (late, flagged for review)" if late else "",
    )
    return ApplyOutcome(True, Applied.APPLIED, f"{previous} -> {result.status}")


def result_mismatch(payment: Payment, result: ProviderResult) -> str:
    """Why a provider's word cannot be applied to this payment (another reference, amount or currency); "" if it can."""
    if result.our_reference and result.our_reference not in (payment.reference, payment.external_id):
        return f"reference {result.our_reference!r} is not {payment.reference!r}"
    if (
        result.provider_reference
        and payment.provider_reference
        and result.provider_reference != payment.provider_reference
    ):
        return f"provider reference {result.provider_reference!r} is not {payment.provider_reference!r}"
    if result.status == PaymentStatus.SUCCEEDED:
        if result.amount is not None and result.amount != payment.amount:
            return f"amount {result.amount} is not {payment.amount}"
        if result.currency and result.currency != payment.currency:
            return f"currency {result.currency} is not {payment.currency}"
    return ""


def _remember_provider_reference(payment: Payment, result: ProviderResult) -> None:
    if result.provider_reference and not payment.provider_reference:
        payment.provider_reference = result.provider_reference
        payment.save(update_fields=["provider_reference", "updated_at"])


def method_label(provider: str, channel: str = "") -> str:
    """How a payment's method is named to donors ("M-Pesa (Vodacom)", "MTN MoMo")."""
    cls = PROVIDER_CLASSES.get(provider)
    if cls is not None and issubclass(cls, Collections) and provider in settings.PAYMENT_PROVIDERS:
        for method in get_capable(provider, Collections).payment_methods():
            if method.channel.lower() == (channel or "").lower():
                return method.label
    return channel or (cls.display_name if cls else provider)


def payment_fetch_status(
    *, payment: Payment, provider_reference: str | None = None, bound: bool = True
) -> ProviderResult:
    """Ask the provider about a payment. ProviderError when it cannot be asked; an answer the adapter cannot
    read is UNKNOWN (logged), never a crash that would stop a reconciliation run.

    `provider_reference` asks about that id instead of the stored one (which always came from an authenticated
    source: the checkout answer, an id we chose, an authenticated callback or a bound answer). `bound=False` says
    nobody authenticated it (an unverified callback named it): anyone can name any transaction's id, so the
    answer then counts only when it names this payment itself, by our reference and the amount; otherwise it is
    UNKNOWN and carries no provider id, so nothing is credited, failed or remembered on it.
    """
    provider = get_capable(payment.provider, Collections)
    asked = provider_reference if provider_reference is not None else payment.provider_reference or ""
    ref = PaymentRef(
        reference=payment.reference,
        provider_reference=asked,
        channel=payment.channel,
        amount=payment.amount,
        currency=payment.currency,
    )
    try:
        result = provider.fetch_status(ref)
    except ProviderError as error:
        history_record(
            payment_id=payment.pk, kind=PaymentHistory.Kind.STATUS_QUERY, summary=f"could not ask: {error.message}"
        )
        raise
    except Exception as exc:
        logger.exception("Status answer for %s from %s could not be read", payment.reference, payment.provider)
        result = ProviderResult(status=PaymentStatus.UNKNOWN, message=f"Unreadable answer: {type(exc).__name__}")
    bound = bound or asked == (payment.provider_reference or "") or provider.status_asks_by_our_reference
    if not bound and not answer_names_payment(payment, result):
        logger.warning(
            "Payment %s: %s's answer about %s (named by an unauthenticated callback) is not bound to it; not used",
            payment.reference,
            payment.provider,
            asked,
        )
        result = ProviderResult(
            status=PaymentStatus.UNKNOWN,
            message=f"{result.status} for {asked}, an id no authenticated source gave us for this payment, and the "
            "answer names neither our reference nor the amount: not bound to this payment, not used",
        )
    history_record(
        payment_id=payment.pk,
        kind=PaymentHistory.Kind.STATUS_QUERY,
        summary=f"{payment.provider} says {result.status}" + (f": {result.message}" if result.message else ""),
    )
    return result


def answer_names_payment(payment: Payment, result: ProviderResult) -> bool:
    """The provider's answer itself says it is about this payment: our reference and the amount (and the
    currency, when it gives one). Nothing filled in by an adapter: a missing field binds nothing."""
    return (
        bool(result.our_reference)
        and result.our_reference in (payment.reference, payment.external_id)
        and result.amount is not None
        and result.amount == payment.amount
        and (not result.currency or result.currency == payment.currency)
    )


def payment_confirm(*, payment_id: int, on_demand: bool = False) -> tuple[ProviderResult | None, ApplyOutcome]:
    """Ask the provider about one payment now and apply its answer. Safe to run any number of times.

    `on_demand` (the donor's refresh, an admin's "check now") records the check but leaves the
    reconciliation ladder where it was: asking early must never push the next scheduled check later. A
    payment past its deadline expires even while the provider cannot be asked (a later verified success is
    still applied, and flagged).
    """
    payment = Payment.objects.get(pk=payment_id)
    if payment.status == Payment.Status.SUCCEEDED:
        return None, ApplyOutcome(False, Applied.DUPLICATE, "already succeeded")
    try:
        result = payment_fetch_status(payment=payment)
    except ProviderError as error:
        _record_check(payment_id, on_demand=on_demand)
        logger.warning("Status check for %s failed: %s", payment.reference, error.message)
        return None, _expire_if_due(payment) or ApplyOutcome(False, Applied.PENDING, error.message)
    cause = "status query (checked on demand)" if on_demand else "status query (reconciliation)"
    outcome = payment_apply_result(payment_id=payment_id, result=result, verified=True, cause=cause)
    if not outcome.changed:
        _record_check(payment_id, on_demand=on_demand)
        if result.status in (PaymentStatus.PENDING, PaymentStatus.UNKNOWN):
            outcome = _expire_if_due(payment) or outcome
    return result, outcome


def _expire_if_due(payment: Payment) -> ApplyOutcome | None:
    if payment.created_at >= timezone.now() - timedelta(seconds=settings.PAYMENT_EXPIRY_SECONDS):
        return None
    expired = ProviderResult(status=PaymentStatus.EXPIRED, message="No confirmation from the provider in time.")
    return payment_apply_result(payment_id=payment.pk, result=expired, verified=True, cause="expiry")


def _record_check(payment_id: int, *, on_demand: bool) -> None:
    """When we last asked; a scheduled check also moves the payment one rung up the ladder."""
    now = timezone.now()
    if on_demand:
        Payment.objects.filter(pk=payment_id).update(last_checked_at=now)
        return
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        payment.last_checked_at = now
        payment.check_count += 1
        payment.next_check_at = (
            None if payment.is_terminal else now + timedelta(seconds=ladder_step(payment.check_count))
        )
        payment.save(update_fields=["last_checked_at", "check_count", "next_check_at", "updated_at"])


def payment_check_on_demand(*, payment: Payment) -> bool:
    """A donor's "check now": ask the provider if the payment is open and was not asked in the last
    REFRESH_MIN_INTERVAL_SECONDS (a page that polls must not hammer the provider). True when it asked."""
    if payment.is_terminal:
        return False
    recently = timezone.now() - timedelta(seconds=settings.REFRESH_MIN_INTERVAL_SECONDS)
    if payment.last_checked_at is not None and payment.last_checked_at > recently:
        return False
    payment_confirm(payment_id=payment.pk, on_demand=True)
    return True


@task()
def payment_confirm_task(payment_id: int) -> str:
    """Ask the provider about one payment in the background (an admin's bulk check)."""
    _, outcome = payment_confirm(payment_id=payment_id)
    return outcome.status
