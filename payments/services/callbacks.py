"""Payment callbacks: after the shared steps (callback_steps.py), apply (trusted) or verify (untrusted).

The delivery is already in the inbox (payments.services.inbox) when this runs; every failure leaves it
replayable. Nothing is credited on a callback's word unless the provider authenticates its callbacks and
PAYMENTS_APPLY_TRUSTED_CALLBACKS is on; everything else is confirmed by the provider's status query.
"""

import logging
import traceback
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.tasks import task

from payments.models import CallbackEvent, Payment
from payments.providers.base import CallbackTrust, Collections, PaymentStatus, ProviderResult
from payments.providers.registry import get_capable
from payments.services.callback_steps import Delivery, Parsed, Role, held
from payments.services.inbox import ACCEPTED, CallbackOutcome, Outcome, callback_event_mark
from payments.services.payments import TERMINAL_RESULTS, Applied, payment_apply_result, payment_fetch_status
from payments.url_tokens import digests_match

logger = logging.getLogger("payments.callbacks")
TRACEBACK_CHARS = 20_000  # the end of a traceback says where it broke


class PaymentRole(Role):
    """A collection's outcome (AzamPay, M-Pesa STK, MTN, Airtel)."""

    def parse(self, provider: Any, event: CallbackEvent, body: bytes) -> Parsed:
        result = get_capable(event.provider, Collections).parse_callback(event.kind, body, event.headers)
        return Parsed(result, result.our_reference, result.provider_reference)

    def decide(self, delivery: Delivery) -> CallbackOutcome:
        event, token, result = delivery.event, delivery.token, delivery.value
        named = payment_for_result(event.provider, result)
        if token.payment is not None and named is not None and named.pk != token.payment.pk:
            # The secret URL belongs to a different payment than the body names: never apply, show a person.
            event.payment = token.payment
            logger.warning("Callback %s: URL token does not match payment %s", event.pk, named.reference)
            return held(event, f"URL token belongs to {token.payment}")
        # On its own secret URL a callback belongs to that payment even when we never learnt the provider's
        # reference for it (the request to start it timed out after the provider acted).
        payment = token.payment or named
        if payment is None:
            callback_event_mark(event, CallbackEvent.Status.REJECTED, error="unknown reference")
            logger.warning("Callback %s names an unknown payment (ref %s)", event.pk, result.our_reference)
            return CallbackOutcome(Outcome.UNKNOWN_REFERENCE, 404, "No payment with this reference.")
        event.payment = payment

        if delivery.on_its_word and result.status == PaymentStatus.SUCCEEDED:
            return _apply(event, payment, result)

        # Not trusted enough to credit on its word, or a failure (which can arrive before the real success, so
        # it is re-queried too). Ask the provider, then apply what it says.
        callback_event_mark(event, CallbackEvent.Status.RECEIVED)
        if delivery.in_worker:
            # Already in a task worker (CALLBACK_ACK=stored): ask now rather than queue a second task. The
            # event is committed `received` first, so a crash here still leaves it for the sweeper.
            return callback_verify(event_id=event.pk)
        event_id = event.pk
        transaction.on_commit(lambda: _enqueue_verification(event_id))
        return CallbackOutcome(Outcome.QUEUED, 200, "Received; verifying with the provider.")


PAYMENT = PaymentRole()


def _apply(event: CallbackEvent, payment: Payment, result: ProviderResult) -> CallbackOutcome:
    # The credit and the delivery's verdict commit together: never a credited payment whose delivery still
    # reads `received`, and one commit (one log flush) fewer per callback.
    with transaction.atomic():
        outcome = payment_apply_result(
            payment_id=payment.pk, result=result, verified=True, cause=f"authenticated callback #{event.pk}"
        )
        if outcome.status == Applied.REVIEW:
            return held(event, outcome.detail)
        status = CallbackEvent.Status.PROCESSED if outcome.changed else CallbackEvent.Status.IGNORED
        callback_event_mark(event, status, error="" if outcome.changed else outcome.detail)
    return CallbackOutcome(ACCEPTED, 200, "Callback received")


def callback_verify(*, event_id: int) -> CallbackOutcome:
    """Check a callback against the provider's status API and apply the provider's answer.

    A terminal answer from the provider wins. Without one (still pending, unknown), an authenticated
    callback is applied as it stands when PAYMENTS_APPLY_TRUSTED_CALLBACKS allows; anything else is held for
    review and the payment stays on the reconciliation ladder. An unreachable provider leaves the event
    `failed`, retried by the sweeper.
    """
    event = CallbackEvent.objects.select_related("payment").get(pk=event_id)
    if event.payment is None:
        return CallbackOutcome(Outcome.UNKNOWN_REFERENCE, 404, "No payment")
    if event.is_settled:
        return CallbackOutcome(Outcome.DUPLICATE, 200, f"Already {event.status}.")
    try:
        return _verify(event, event.payment)
    except Exception as exc:  # the task boundary: keep the event replayable
        logger.exception("Verifying callback %s failed", event.pk)
        event.traceback = traceback.format_exc()[-TRACEBACK_CHARS:]
        callback_event_mark(event, CallbackEvent.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
        return CallbackOutcome(Outcome.FAILED, 200, "Verification failed; will be retried.")


def _verify(event: CallbackEvent, payment: Payment) -> CallbackOutcome:
    claimed = get_capable(event.provider, Collections).parse_callback(event.kind, event.body.encode(), event.headers)
    verdict = verification_verdict(event, payment, claimed, verification_ask(event, payment, claimed))
    if verdict.result is None:
        return held(event, verdict.why, "Held for review: the provider does not confirm it.")
    outcome = payment_apply_result(payment_id=payment.pk, result=verdict.result, verified=True, cause=verdict.cause)
    if outcome.status == Applied.REVIEW:
        return held(event, outcome.detail, "Held for review.")
    # What the provider says is applied; a callback that claimed another amount is kept with that noted (it was
    # garbled or forged: only the status query's word moved money).
    callback_event_mark(
        event,
        CallbackEvent.Status.PROCESSED if outcome.changed else CallbackEvent.Status.IGNORED,
        error="; ".join(part for part in (verdict.note, "" if outcome.changed else outcome.detail) if part),
    )
    return CallbackOutcome(ACCEPTED, 200, "Verified with the provider.")


def verification_ask(event: CallbackEvent, payment: Payment, claimed: ProviderResult) -> ProviderResult:
    """The provider's answer about the payment a callback names (its HTTP call; ProviderError when it cannot be
    asked). The batch worker runs several of these at once (callback_batch.py)."""
    # A payment started by a request that timed out (or on AzamPay's hosted page) has no provider reference yet:
    # ask about the one the callback names. That id is bound to the payment only when the callback was
    # authenticated or came to the payment's own secret URL; anyone can name another transaction's id, so
    # otherwise the answer must name the payment itself (payment_fetch_status).
    if payment.provider_reference:
        said = payment_fetch_status(payment=payment)
    else:
        said = payment_fetch_status(
            payment=payment,
            provider_reference=claimed.provider_reference,
            bound=event.trust == CallbackTrust.TRUSTED or _on_own_secret_url(event, payment),
        )
    if said.status == claimed.status and not said.receipt and claimed.receipt and _on_own_secret_url(event, payment):
        # The status query confirms the callback but carries no receipt (Daraja's STK query): keep the
        # callback's receipt number, the one the donor has in their SMS — but only from a callback that came
        # to the payment's own secret URL, so that a forger cannot choose what donors and admins see.
        said = replace(said, receipt=claimed.receipt)
    return said


@dataclass(frozen=True)
class Verdict:
    """What a checked callback moves: `result` (None: nothing, held for review because of `why`)."""

    result: ProviderResult | None
    cause: str = ""
    why: str = ""
    note: str = ""  # how the callback contradicts the applied answer, kept on the event


def verification_verdict(
    event: CallbackEvent, payment: Payment, claimed: ProviderResult, said: ProviderResult
) -> Verdict:
    """A terminal answer from the provider wins; without one an authenticated callback stands when the operator
    lets such callbacks move money; anything else is held."""
    if said.status in TERMINAL_RESULTS:
        result, cause = said, f"callback #{event.pk}, checked by status query"
    elif event.trust == CallbackTrust.TRUSTED and settings.PAYMENTS_APPLY_TRUSTED_CALLBACKS:
        result, cause = claimed, f"authenticated callback #{event.pk}"
    else:
        logger.warning("Callback %s not confirmed: claims %s, provider says %s", event.pk, claimed.status, said.status)
        return Verdict(
            None, why=f"callback claims {claimed.status}; provider reports {said.status}: {said.message}"[:2000]
        )
    note = _contradiction(claimed, said, payment)
    if note:
        logger.warning("Callback %s contradicts the provider: %s", event.pk, note)
    return Verdict(result, cause, note=note)


def _contradiction(claimed: ProviderResult, said: ProviderResult, payment: Payment) -> str:
    """How the callback disagrees with the provider's answer on the amount (or, when the status query gives no
    amount — Daraja's STK query — with what we asked for)."""
    if claimed.amount is None or claimed.status != PaymentStatus.SUCCEEDED:
        return ""
    if said.amount is not None:
        reference, whose = said.amount, "the provider reports"
    else:
        reference, whose = payment.amount, "we asked"
    if claimed.amount != reference:
        return f"callback claimed {claimed.amount}, {whose} {reference}; the provider's answer was applied"
    return ""


def _on_own_secret_url(event: CallbackEvent, payment: Payment) -> bool:
    return digests_match(event.url_token_digest, payment.callback_token_digest or "")


@task()
def verify_callback(event_id: int) -> str:
    """The background half of an untrusted callback: ask the provider, apply its answer."""
    return str(callback_verify(event_id=event_id).code)


def _enqueue_verification(event_id: int) -> None:
    try:
        verify_callback.enqueue(event_id)
    except Exception:  # the queue is down: the event is `received` and due for the sweeper, which verifies it
        logger.exception("Callback %s: verification not queued; the sweeper will run it", event_id)


def payment_for_result(provider_code: str, result: ProviderResult) -> Payment | None:
    lookups = Q()
    if result.our_reference:
        lookups |= Q(reference=result.our_reference) | Q(external_id=result.our_reference)
    if result.provider_reference:
        lookups |= Q(provider_reference=result.provider_reference)
    if not lookups:
        return None
    return Payment.objects.filter(lookups, provider=provider_code).order_by("-pk").first()
