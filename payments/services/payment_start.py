"""Starting a payment: create the attempt, then ask the provider to prompt the payer (or open its page).

Apart from the state machine (payments.py) because it is the one step that talks to the provider before
there is anything to apply, and its own rule for a request whose outcome is unknown (pending, never failed).
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from donor.models import Donation
from donor.services import donation_fail
from payments.callback_urls import callback_url
from payments.models import Payment, PaymentHistory, fit
from payments.providers.base import CallbackRole, ChargeRequest, Collections, ProviderError
from payments.providers.registry import get_capable, get_provider
from payments.services.audit import history_record
from payments.url_tokens import new_url_token, url_token_digest

logger = logging.getLogger("payments")


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
