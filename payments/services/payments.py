"""Starting a payment and moving it through its state machine (the only place a payment changes state)."""

import logging
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from django.conf import settings
from django.db import transaction
from django.tasks import task
from django.urls import reverse
from django.utils import timezone

from donor.models import Donation
from donor.notifications import donation_notify_queue, notices_record
from donor.services import donation_cancel, donation_complete, donation_expire, donation_fail
from payments.callback_urls import callback_url
from payments.models import Payment, PaymentHistory, fit
from payments.providers.base import (
    CallbackRole,
    ChargeRequest,
    Collections,
    PaymentRef,
    PaymentStatus,
    ProviderError,
    ProviderResult,
)
from payments.providers.registry import PROVIDER_CLASSES, get_capable, get_provider
from payments.services.audit import history_record
from payments.url_tokens import new_url_token, url_token_digest

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


class PaymentStartFailed(Exception):
    def __init__(self, payment: Payment, error: ProviderError):
        super().__init__(error.message)
        self.payment = payment
        self.error = error


def payment_start(
    *, donation: Donation, provider_code: str, channel: str = "", msisdn: str = "", extra: dict | None = None
) -> Payment:
    """Create the attempt, then ask the provider to prompt the payer. No transaction is held over HTTP.

    Refused → the payment and donation fail (PaymentStartFailed). Timed out or cut off after the request
    left us → the outcome is unknown: the payment stays pending and the status query or the callback on its
    secret URL decides (`payment.start_outcome_unknown` is set). Every write after the provider's answer is
    conditional on the state before it, so a callback that settled the payment meanwhile is never undone.
    """
    provider = get_capable(provider_code, Collections)
    attempt = donation.payments.count()
    reference = donation.reference if attempt == 0 else f"{donation.reference}-{attempt + 1}"
    token = new_url_token()
    # A provider that lets us choose its id for the payment (MTN) gets it stored before the request leaves:
    # whatever happens to the request, the status query can then ask about it.
    chosen_reference = provider.reference_before_request()
    payment = Payment.objects.create(
        donation=donation,
        reference=reference,
        external_id=provider.external_id(reference, channel),
        # Due for a status check even if this process dies before the provider answers.
        next_check_at=timezone.now() + timedelta(seconds=ladder_step(0)),
        provider=provider_code,
        channel=channel,
        msisdn=msisdn,
        amount=donation.amount,
        currency=donation.currency,
        status=Payment.Status.CREATED,
        callback_token_digest=url_token_digest(token),
        provider_reference=chosen_reference or None,
    )
    status_url = settings.SITE_URL + reverse("donation-status-page", kwargs={"reference": donation.public_token})
    charge = ChargeRequest(
        reference=payment.reference,
        amount=payment.amount,
        currency=payment.currency,
        msisdn=msisdn,
        channel=channel,
        callback_url=callback_url(get_provider(provider_code), CallbackRole.PAYMENT, token),
        success_url=f"{status_url}?return=success",
        failure_url=f"{status_url}?return=failed",
        description=f"Donation {donation.reference}"[:60],
        extra=extra or {},
        provider_reference=chosen_reference,
    )
    payment.start_outcome_unknown = False
    try:
        result = provider.start_charge(charge)
    except ProviderError as error:
        if error.ambiguous:
            return _start_outcome_unknown(payment, error)
        # It ended now: completed_at is when a payment ended (the settlement file's time and day), whatever
        # the outcome; nothing is left to check.
        failed = Payment.objects.filter(pk=payment.pk, status=Payment.Status.CREATED).update(
            status=Payment.Status.FAILED,
            failure_reason=fit(Payment, "failure_reason", error.message),
            completed_at=timezone.now(),
            next_check_at=None,
        )
        history_record(
            payment_id=payment.pk, kind=PaymentHistory.Kind.START, summary=f"{provider_code} refused: {error.message}"
        )
        payment.refresh_from_db()
        if not failed:  # a callback settled it while the refusal was on its way: the callback's word stands
            logger.warning(
                "Payment %s: start refused by %s but already %s", payment.reference, provider_code, payment.status
            )
            return payment
        donation_fail(donation_id=donation.pk, reason=error.message)
        logger.warning("Payment %s refused by %s: %s", payment.reference, provider_code, error.message)
        raise PaymentStartFailed(payment, error) from error

    # A fast callback may already have settled the payment: only move it forward from CREATED, and only
    # fill in what nobody has written yet.
    Payment.objects.filter(pk=payment.pk, status=Payment.Status.CREATED).update(
        status=Payment.Status.PENDING, next_check_at=timezone.now() + timedelta(seconds=ladder_step(0))
    )
    if result.provider_reference:
        Payment.objects.filter(pk=payment.pk, provider_reference__isnull=True).update(
            provider_reference=fit(Payment, "provider_reference", result.provider_reference)
        )
    if result.checkout_url:
        Payment.objects.filter(pk=payment.pk, checkout_url="").update(
            checkout_url=fit(Payment, "checkout_url", result.checkout_url)
        )
    payment.refresh_from_db()
    payment.start_outcome_unknown = False
    history_record(
        payment_id=payment.pk,
        kind=PaymentHistory.Kind.START,
        summary=f"{provider_code} accepted the request ({result.provider_reference or 'no reference yet'})",
    )
    logger.info(
        "Payment %s started with %s/%s: %s %s, provider ref %s",
        payment.reference,
        provider_code,
        channel,
        payment.amount,
        payment.currency,
        result.provider_reference or "-",
    )
    return payment


def _start_outcome_unknown(payment: Payment, error: ProviderError) -> Payment:
    """The charge request may have reached the provider: neither failed nor started. Pending, checked soon."""
    Payment.objects.filter(pk=payment.pk, status=Payment.Status.CREATED).update(
        status=Payment.Status.PENDING, next_check_at=timezone.now() + timedelta(seconds=ladder_step(0))
    )
    history_record(
        payment_id=payment.pk,
        kind=PaymentHistory.Kind.START,
        summary=f"asked {payment.provider}; {error.message} The outcome is unknown: pending until it is known",
    )
    payment.refresh_from_db()
    payment.start_outcome_unknown = True
    logger.warning(
        "Payment %s: %s (outcome unknown; pending until the provider confirms or the payment expires)",
        payment.reference,
        error.message,
    )
    return payment


def ladder_step(check_count: int) -> int:
    ladder = settings.RECONCILE_LADDER_SECONDS
    return ladder[min(check_count, len(ladder) - 1)]


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
        mismatch = _mismatch(payment, result)
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


def _mismatch(payment: Payment, result: ProviderResult) -> str:
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
