"""The callback inbox: record the raw delivery first, then authenticate, parse and apply or verify.

Every delivery leaves a CallbackEvent whatever happens next, so a failure is always replayable.
"""

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from payments.models import CallbackEvent, Payment
from payments.providers import get_provider
from payments.providers.base import (
    CallbackMalformed,
    CallbackTrust,
    PaymentProvider,
    PaymentStatus,
    ProviderError,
    ProviderResult,
)
from payments.services.payments import TERMINAL_RESULTS, payment_apply_result, payment_fetch_status

logger = logging.getLogger("payments.callbacks")

# Headers worth keeping for an investigation; never Authorization or cookies.
KEPT_HEADERS = {"content-type", "user-agent", "x-forwarded-for", "x-real-ip", "content-length", "x-request-id"}
SETTLED_STATUSES = {
    CallbackEvent.Status.PROCESSED,
    CallbackEvent.Status.DUPLICATE,
    CallbackEvent.Status.IGNORED,
    CallbackEvent.Status.RECEIVED,
    CallbackEvent.Status.REVIEW,
}


class InboxUnavailable(Exception):
    """The raw callback could not be stored: answer 503 so the provider tries again."""


@dataclass(frozen=True)
class CallbackOutcome:
    # accepted | duplicate | queued | review | ignored | unauthenticated | malformed | unknown_reference | failed
    code: str
    http_status: int
    message: str


ACCEPTED = "accepted"


def callback_record(
    *,
    provider_code: str,
    kind: str,
    body: bytes,
    headers: Mapping[str, str],
    client_ip: str | None,
    url_token: str = "",
) -> CallbackEvent:
    """Store the delivery in its own committed transaction before anything trusts it."""
    provider = get_provider(provider_code)
    digest = hashlib.sha256(body).hexdigest()
    fields = {
        "provider": provider_code,
        "kind": kind,
        "body": provider.redact(body),
        "headers": {k: v for k, v in headers.items() if k.lower() in KEPT_HEADERS},
        "client_ip": client_ip,
        "sha256": digest,
        "url_token": url_token[:64],
    }
    dedup_key = f"{provider_code}:{kind}:{digest}"
    try:
        try:
            return _insert_event(dedup_key=dedup_key, **fields)
        except IntegrityError:
            original = (
                CallbackEvent.objects.filter(dedup_key=dedup_key)
                .only("pk", "status", "payment_id", "our_reference", "provider_reference")
                .first()
            )
            settled = original is not None and original.status in SETTLED_STATUSES
            with transaction.atomic():
                return CallbackEvent.objects.create(
                    duplicate_of=original,
                    status=CallbackEvent.Status.DUPLICATE if settled else CallbackEvent.Status.RECEIVED,
                    payment_id=original.payment_id if original else None,
                    our_reference=original.our_reference if original else "",
                    provider_reference=original.provider_reference if original else "",
                    **fields,
                )
    except DatabaseError as exc:
        logger.error("Could not store %s/%s callback (sha256 %s): %s", provider_code, kind, digest[:12], exc)
        raise InboxUnavailable from exc


def _insert_event(**fields) -> CallbackEvent:
    # One INSERT commits on its own in autocommit mode; BEGIN/COMMIT around it would only cost round trips.
    # Inside a caller's transaction (tests, replays) a savepoint keeps a duplicate-key error contained.
    if transaction.get_connection().in_atomic_block:
        with transaction.atomic():
            return CallbackEvent.objects.create(**fields)
    return CallbackEvent.objects.create(**fields)


def callback_process(*, event: CallbackEvent, raw_body: bytes | None = None) -> CallbackOutcome:
    """Authenticate → parse → apply (trusted) or verify with the provider (untrusted). Idempotent."""
    if event.status == CallbackEvent.Status.DUPLICATE:
        logger.info("Callback %s repeats #%s; answered without re-processing", event.pk, event.duplicate_of_id)
        return CallbackOutcome("duplicate", 200, "Duplicate delivery; already received.")
    provider = get_provider(event.provider)
    try:
        return _process(event, provider, raw_body)
    except Exception as exc:  # the boundary: keep the event as failed, replayable; answer 200, it is stored
        logger.exception("Callback %s failed while processing", event.pk)
        callback_event_mark(event, CallbackEvent.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
        return CallbackOutcome("failed", 200, "Received; processing will be retried.")


def _process(event: CallbackEvent, provider: PaymentProvider, raw_body: bytes | None) -> CallbackOutcome:
    body = raw_body if raw_body is not None else event.body.encode()
    if raw_body is not None or not event.trust:
        token_payment = Payment.objects.filter(callback_token=event.url_token).first() if event.url_token else None
        expected = token_payment.callback_token if token_payment else ""
        event.trust = provider.authenticate_callback(
            event.kind, body, event.headers, event.url_token, expected, client_ip=event.client_ip
        )
    if event.trust == CallbackTrust.REJECTED:
        callback_event_mark(event, CallbackEvent.Status.REJECTED, error="authentication failed")
        logger.warning("Callback %s from %s rejected: authentication failed", event.pk, event.client_ip)
        return CallbackOutcome("unauthenticated", 401, "Callback authentication failed.")

    try:
        result = provider.parse_callback(event.kind, body, event.headers)
    except CallbackMalformed as exc:
        callback_event_mark(event, CallbackEvent.Status.REJECTED, error=f"malformed: {exc}")
        return CallbackOutcome("malformed", 400, f"Malformed callback: {exc}.")
    event.our_reference = result.our_reference[:64]
    event.provider_reference = result.provider_reference[:100]

    payment = payment_for_result(event.provider, result)
    if payment is None:
        callback_event_mark(event, CallbackEvent.Status.REJECTED, error="unknown reference")
        logger.warning("Callback %s names an unknown payment (ref %s)", event.pk, result.our_reference)
        return CallbackOutcome("unknown_reference", 404, "No payment with this reference.")
    event.payment = payment
    if event.url_token and payment.callback_token != event.url_token:
        # The secret URL belongs to a different payment than the body names: never apply, show a person.
        callback_event_mark(event, CallbackEvent.Status.REVIEW, error="URL token belongs to another payment")
        logger.warning("Callback %s: URL token does not match payment %s", event.pk, payment.reference)
        return CallbackOutcome("review", 200, "Received; held for review.")

    trusted = event.trust == CallbackTrust.TRUSTED and settings.PAYMENTS_APPLY_TRUSTED_CALLBACKS
    if trusted and result.status == PaymentStatus.SUCCEEDED:
        return _apply(event, payment, result)

    # Not trusted enough to credit on its word, or a failure (which AzamPay's own notes say to re-query:
    # a failure can arrive before the real success). Ask the provider, then apply what it says.
    callback_event_mark(event, CallbackEvent.Status.RECEIVED)
    event_id = event.pk
    transaction.on_commit(lambda: _enqueue_verification(event_id))
    return CallbackOutcome("queued", 200, "Received; verifying with the provider.")


def _apply(event: CallbackEvent, payment: Payment, result: ProviderResult) -> CallbackOutcome:
    outcome = payment_apply_result(payment_id=payment.pk, result=result, verified=True)
    if outcome.status == "review":
        callback_event_mark(event, CallbackEvent.Status.REVIEW, error=outcome.detail)
        return CallbackOutcome("review", 200, "Received; held for review.")
    status = CallbackEvent.Status.PROCESSED if outcome.changed else CallbackEvent.Status.IGNORED
    callback_event_mark(event, status, error="" if outcome.changed else outcome.detail)
    return CallbackOutcome(ACCEPTED, 200, "Callback received")


def callback_verify(*, event_id: int) -> CallbackOutcome:
    """Check a callback against the provider's status API and apply the provider's answer.

    A terminal answer from the provider wins. Without one (still pending, unknown, unreachable) an
    authenticated callback is applied as it stands; an unauthenticated one is held for review and the
    payment stays on the reconciliation ladder.
    """
    event = CallbackEvent.objects.select_related("payment").get(pk=event_id)
    if event.payment is None:
        return CallbackOutcome("unknown_reference", 404, "No payment")
    try:
        return _verify(event)
    except Exception as exc:  # the task boundary: keep the event replayable
        logger.exception("Verifying callback %s failed", event.pk)
        callback_event_mark(event, CallbackEvent.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
        return CallbackOutcome("failed", 200, "Verification failed; will be retried.")


def _verify(event: CallbackEvent) -> CallbackOutcome:
    claimed = get_provider(event.provider).parse_callback(event.kind, event.body.encode(), event.headers)
    try:
        said = payment_fetch_status(payment=event.payment)
    except ProviderError as error:
        said = ProviderResult(status=PaymentStatus.UNKNOWN, message=error.message)
    if said.status == claimed.status and not said.receipt and claimed.receipt:
        # The status query confirms the callback but carries no receipt (Daraja's STK query): keep the
        # callback's receipt number, the one the donor has in their SMS.
        said = replace(said, receipt=claimed.receipt)
    if said.status in TERMINAL_RESULTS:
        outcome = payment_apply_result(payment_id=event.payment.pk, result=said, verified=True)
    elif event.trust == CallbackTrust.TRUSTED:
        outcome = payment_apply_result(payment_id=event.payment.pk, result=claimed, verified=True)
    else:
        callback_event_mark(
            event,
            CallbackEvent.Status.REVIEW,
            error=f"callback claims {claimed.status}; provider reports {said.status}: {said.message}"[:2000],
        )
        logger.warning("Callback %s not confirmed: claims %s, provider says %s", event.pk, claimed.status, said.status)
        return CallbackOutcome("review", 200, "Held for review: the provider does not confirm it.")
    if outcome.status == "review":
        callback_event_mark(event, CallbackEvent.Status.REVIEW, error=outcome.detail)
        return CallbackOutcome("review", 200, "Held for review.")
    callback_event_mark(
        event,
        CallbackEvent.Status.PROCESSED if outcome.changed else CallbackEvent.Status.IGNORED,
        error="" if outcome.changed else outcome.detail,
    )
    return CallbackOutcome(ACCEPTED, 200, "Verified with the provider.")


def _enqueue_verification(event_id: int) -> None:
    from payments.tasks import verify_callback

    verify_callback.enqueue(event_id)


def payment_for_result(provider_code: str, result: ProviderResult) -> Payment | None:
    lookups = Q()
    if result.our_reference:
        lookups |= Q(reference=result.our_reference) | Q(external_id=result.our_reference)
    if result.provider_reference:
        lookups |= Q(provider_reference=result.provider_reference)
    if not lookups:
        return None
    return Payment.objects.filter(lookups, provider=provider_code).order_by("-pk").first()


def callback_event_mark(event: CallbackEvent, status: str, *, error: str = "") -> None:
    """Record what became of a delivery (and what we learnt about it) on its inbox row."""
    event.status = status
    event.error = error[:2000]
    event.attempts += 1
    event.processed_at = timezone.now()
    event.save(
        update_fields=[
            "status",
            "error",
            "attempts",
            "processed_at",
            "trust",
            "payment",
            "our_reference",
            "provider_reference",
        ]
    )


def callback_replay(*, event: CallbackEvent, dry_run: bool = False) -> CallbackOutcome:
    """Run a stored callback through the pipeline again. A dry run shows the outcome and rolls back."""
    if event.status == CallbackEvent.Status.DUPLICATE:
        event.status = CallbackEvent.Status.RECEIVED  # replaying a duplicate on purpose: process it
    if not dry_run:
        return callback_process(event=event)
    with transaction.atomic():
        outcome = callback_process(event=event)
        transaction.set_rollback(True)  # on_commit hooks (tasks, notifications) are discarded too
    event.refresh_from_db()
    return outcome
