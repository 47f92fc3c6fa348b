"""The callback inbox: a durable work queue of raw deliveries.

A delivery is stored before anything trusts it (its own commit), then handled. It is *settled* only in a
terminal state (processed, duplicate of a settled delivery, ignored, rejected, review, dead); `received` and
`failed` are work still to do. A resend of a delivery whose original never settled is handled again (the
payment row lock and the ledger's unique constraints make that safe), never answered "duplicate" and
forgotten. The sweeper (`payments.services.dispatch.callbacks_sweep`, run by `reconcile_payments`) re-runs
what is left, with exponential backoff, and parks an event as `dead` after CALLBACK_MAX_ATTEMPTS.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from payments.models import CallbackEvent, CallbackRefusal, Payment, fit
from payments.providers.base import CallbackRole, CallbackTrust, PaymentProvider, RawCallback, UrlToken
from payments.providers.registry import get_provider
from payments.url_tokens import body_digest, digests_match, url_token_digest

logger = logging.getLogger("payments.callbacks")

# Headers worth keeping for an investigation; never Authorization or cookies.
KEPT_HEADERS = {"content-type", "user-agent", "x-forwarded-for", "x-real-ip", "content-length", "x-request-id"}
# A refused delivery's record keeps these, cut short: its size is fixed whatever the sender puts in them.
REFUSED_HEADERS = {"content-type", "user-agent", "content-length"}
REFUSED_HEADER_CHARS = 100
# Callbacks that report money which already moved and that no status query can confirm (a paybill payment, a
# payout's or a refund's result): their body is kept whatever the verdict, for a person to check. A paybill
# confirmation at a URL with an old secret may still be Safaricom's.
MONEY_REPORT_ROLES = frozenset(
    {
        CallbackRole.PAYBILL_CONFIRMATION,
        CallbackRole.PAYOUT_RESULT,
        CallbackRole.PAYOUT_TIMEOUT,
        CallbackRole.REFUND_RESULT,
        CallbackRole.REFUND_TIMEOUT,
    }
)
MAX_RETRY_DELAY = timedelta(hours=6)


class InboxUnavailable(Exception):
    """The raw callback could not be stored: answer 503 so the provider tries again."""


class Outcome(StrEnum):
    """What became of a callback, as the webhook, the task results, the sweep report and the admin name it. A
    StrEnum: equal to the strings these always were ("accepted" == Outcome.ACCEPTED), so nothing stored changes."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    QUEUED = "queued"  # waiting for the provider's status query, or in another worker's batch (or the sweeper)
    REVIEW = "review"
    IGNORED = "ignored"
    UNAUTHENTICATED = "unauthenticated"
    MALFORMED = "malformed"
    UNKNOWN_REFERENCE = "unknown_reference"
    FAILED = "failed"  # the handler crashed: kept, retried with backoff
    UNAVAILABLE = "unavailable"  # the database went away mid-way: 503, the provider resends
    SETTLED = "settled"  # a task found the event already settled (process_callback)


@dataclass(frozen=True)
class CallbackOutcome:
    code: Outcome
    http_status: int
    message: str
    # The provider's own answer body when the handler decides it (C2B validation's accept/reject); otherwise
    # the webhook asks the provider adapter for its acknowledgement.
    ack: Mapping | None = None

    @property
    def acknowledged(self) -> bool:
        return self.http_status < 400


ACCEPTED = Outcome.ACCEPTED


def callback_record(
    *,
    provider_code: str,
    kind: str,
    body: bytes,
    headers: Mapping[str, str],
    client_ip: str | None,
    url_token: str = "",
    over_limit: bool = False,
) -> CallbackEvent:
    """Store the delivery in its own committed transaction before anything acts on it.

    Stored with the adapter's verdict on the raw bytes: the stored copy has its secrets redacted (AzamPay's
    password), so a worker that dies right after this INSERT leaves a row whose replay still knows whether the
    delivery was authentic. What an unauthenticated sender can make us store is bounded: a delivery judged
    forged on its bytes, or over the rate limit (`over_limit`) and neither authentic nor undecidable, keeps only
    a fixed-size record (`body_kept` False: digest, size, client, verdict) and adds to its client's count of the
    day (CallbackRefusal) — past CALLBACK_REFUSED_RECORDS_PER_CLIENT records a day only the count (the event
    returned is then not saved). A callback that may report money nobody can ask about (MONEY_REPORT_ROLES)
    keeps its body whatever the verdict.
    A delivery whose exact bytes were stored before is stored again, linked to the first: as `duplicate`
    when the first is settled, else as `received` so that it is handled (the original may have died with
    the worker that was handling it).
    """
    provider = get_provider(provider_code)
    digest = body_digest(body)
    token_digest = url_token_digest(url_token) if url_token else ""
    trust, token = _judge(provider, kind, body, headers, client_ip, token_digest)
    if not _keeps_body(provider.callback_role(kind), trust, token, over_limit):
        return _record_refused(
            provider_code=provider_code,
            kind=kind,
            body=body,
            digest=digest,
            headers=headers,
            client_ip=client_ip,
            token_digest=token_digest,
            trust=trust,
        )
    fields = {
        "provider": provider_code,
        "kind": kind,
        "body": provider.redact(body),
        "body_size": len(body),
        "headers": {k: str(v)[:500] for k, v in headers.items() if k.lower() in KEPT_HEADERS},
        "client_ip": client_ip,
        "body_digest": digest,
        "url_token_digest": token_digest,
        "trust": trust,
        # Due for the sweeper if the worker handling it dies before it settles.
        "next_attempt_at": timezone.now() + timedelta(seconds=settings.CALLBACK_RETRY_GRACE_SECONDS),
    }
    # The same bytes at another secret URL are another delivery (a forger replaying a body at a guessed URL
    # must get its 401, not "duplicate").
    dedup_key = f"{provider_code}:{kind}:{body_digest(token_digest.encode() + body) if token_digest else digest}"
    try:
        try:
            return _insert_event(dedup_key=dedup_key, **fields)
        except IntegrityError:
            original = (
                CallbackEvent.objects.filter(dedup_key=dedup_key)
                .only("pk", "status", "payment_id", "our_reference", "provider_reference")
                .first()
            )
            # A copy of a rejected delivery is judged again and gets its own answer (401, 400, 404), not "duplicate".
            settled = original is not None and original.is_settled and original.status != CallbackEvent.Status.REJECTED
            return _insert_event(
                duplicate_of=original,
                status=CallbackEvent.Status.DUPLICATE if settled else CallbackEvent.Status.RECEIVED,
                payment_id=original.payment_id if original else None,
                our_reference=original.our_reference if original else "",
                provider_reference=original.provider_reference if original else "",
                **(fields | ({"next_attempt_at": None} if settled else {})),
            )
    except DatabaseError as exc:
        logger.error("Could not store %s/%s callback (digest %s): %s", provider_code, kind, digest[:12], exc)
        raise InboxUnavailable from exc


def _judge(
    provider: PaymentProvider, kind: str, body: bytes, headers: Mapping[str, str], client_ip: str | None, token: str
) -> tuple[str, UrlToken | None]:
    """The adapter's verdict on the raw delivery, or "" when it cannot give one now (then the handler asks), and
    what the URL's secret proved (None when that could not be told either)."""
    probe = CallbackEvent(provider=provider.code, kind=kind, url_token_digest=token, client_ip=client_ip)
    verdict = None
    try:
        verdict = url_token_check(probe, provider).verdict
        return provider.authenticate_callback(
            RawCallback(kind=kind, body=body, headers=headers, client_ip=client_ip, url_token=verdict)
        ), verdict
    except Exception:  # a bug in an adapter must not cost the delivery: store it unjudged
        logger.exception("Judging a %s/%s callback failed; stored unjudged", provider.code, kind)
        return "", verdict


def _keeps_body(role: CallbackRole | None, trust: str, token: UrlToken | None, over_limit: bool) -> bool:
    """Whether a delivery's body is worth storing: only authentic or undecidable ones, and every one that may
    report money no query can confirm. A throttled unauthenticated payment callback loses nothing with its
    body: its payment is on the reconciliation ladder, whose status query decides (and the provider resends)."""
    if role in MONEY_REPORT_ROLES:
        return True
    if trust == CallbackTrust.REJECTED:
        return False
    if not over_limit:
        return True
    return trust in (CallbackTrust.TRUSTED, "") or token in (UrlToken.VALID, None)


def _record_refused(
    *,
    provider_code: str,
    kind: str,
    body: bytes,
    digest: str,
    headers: Mapping[str, str],
    client_ip: str | None,
    token_digest: str,
    trust: str,
) -> CallbackEvent:
    """A fixed-size record of a refused delivery, and its client's count of the day."""
    forged = trust == CallbackTrust.REJECTED
    verdict = "forged" if forged else "over the rate limit"
    now = timezone.now()
    try:
        count = _count_refusal(provider_code, client_ip, len(body), verdict, now)
        event = CallbackEvent(
            provider=provider_code,
            kind=kind,
            body="",
            body_kept=False,
            body_size=len(body),
            headers={k: str(v)[:REFUSED_HEADER_CHARS] for k, v in headers.items() if k.lower() in REFUSED_HEADERS},
            client_ip=client_ip,
            body_digest=digest,
            url_token_digest=token_digest,
            trust=trust,
            status=CallbackEvent.Status.REJECTED,
            error=(
                "authentication failed on its bytes: body not kept"
                if forged
                else "over the rate limit (429): body not kept; the provider's resend or the status query finishes it"
            ),
            processed_at=now,
            next_attempt_at=None,
        )
        if count <= settings.CALLBACK_REFUSED_RECORDS_PER_CLIENT:
            event.save()
    except DatabaseError as exc:
        logger.error("Could not record a refused %s/%s callback (digest %s): %s", provider_code, kind, digest[:12], exc)
        raise InboxUnavailable from exc
    logger.warning(
        "Callback %s/%s from %s refused (%s, %s bytes): %s today from this client%s",
        provider_code,
        kind,
        client_ip,
        verdict,
        len(body),
        count,
        "" if event.pk else "; only counted",
    )
    return event


def _count_refusal(provider_code: str, client_ip: str | None, size: int, verdict: str, now: datetime) -> int:
    """Add one to the client's refusals of the day; the count after it (near enough under concurrency).

    Each statement commits on its own: the row is created once (a concurrent creator's duplicate key is read
    back by get_or_create), then incremented under its row lock only, so refusals arriving together queue on
    one row and never deadlock on the unique index."""
    key = {"provider": provider_code, "client_ip": client_ip or "", "day": timezone.localdate(now)}
    CallbackRefusal.objects.get_or_create(**key, defaults={"last_at": now})
    CallbackRefusal.objects.filter(**key).update(
        count=F("count") + 1, bytes=F("bytes") + size, last_verdict=verdict, last_at=now
    )
    return CallbackRefusal.objects.filter(**key).values_list("count", flat=True).get()


def event_trust(event: CallbackEvent, provider: PaymentProvider, body: bytes, token: "TokenCheck", live: bool) -> str:
    """The verdict stored with the delivery; judged now if it was stored unjudged.

    On a replay the stored body has its secrets redacted, so a REJECTED verdict reached now (the password is
    no longer there) only means "cannot tell": UNVERIFIED, and the status query decides. A wrong URL secret
    stays REJECTED: that is known from the digests.
    """
    if event.trust:
        return event.trust
    trust = provider.authenticate_callback(raw_callback(event, body, token))
    if not live and trust == CallbackTrust.REJECTED and token.verdict != UrlToken.INVALID:
        trust = CallbackTrust.UNVERIFIED
    event.trust = trust
    return trust


def _insert_event(**fields: Any) -> CallbackEvent:
    # One INSERT commits on its own in autocommit mode; BEGIN/COMMIT around it would only cost round trips.
    # Inside a caller's transaction (tests, replays) a savepoint keeps a duplicate-key error contained.
    if transaction.get_connection().in_atomic_block:
        with transaction.atomic():
            return CallbackEvent.objects.create(**fields)
    return CallbackEvent.objects.create(**fields)


def callback_event_mark(event: CallbackEvent, status: str, *, error: str = "") -> None:
    """Record what became of a delivery (and what we learnt about it) on its inbox row.

    `failed` schedules the next attempt with exponential backoff, or parks the event as `dead` once it has
    had CALLBACK_MAX_ATTEMPTS; `received` (waiting for a verification task) is due for the sweeper after the
    grace period in case that task is lost; settled statuses are never due again.
    """
    callback_event_stamp(event, status, error=error)
    event.save(update_fields=MARK_FIELDS)


# What marking a delivery writes (callback_event_mark one row, the batch worker many in one UPDATE).
MARK_FIELDS = [
    "status",
    "error",
    "traceback",
    "attempts",
    "next_attempt_at",
    "processed_at",
    "trust",
    "payment",
    "our_reference",
    "provider_reference",
]


def callback_event_stamp(event: CallbackEvent, status: str, *, error: str = "") -> None:
    """callback_event_mark's rules on the object only (MARK_FIELDS), for a caller that saves many at once."""
    now = timezone.now()
    if status == CallbackEvent.Status.FAILED and event.attempts >= settings.CALLBACK_MAX_ATTEMPTS:
        status = CallbackEvent.Status.DEAD
        logger.error("Callback %s parked as dead after %s attempts: %s", event.pk, event.attempts, error[:200])
    event.status = status
    event.error = error[:2000]
    event.processed_at = now
    if status == CallbackEvent.Status.FAILED:
        event.next_attempt_at = now + retry_delay(event.attempts)
    elif status == CallbackEvent.Status.RECEIVED:
        event.next_attempt_at = now + timedelta(seconds=settings.CALLBACK_RETRY_GRACE_SECONDS)
    else:
        event.next_attempt_at = None
    event.our_reference = fit(CallbackEvent, "our_reference", event.our_reference)
    event.provider_reference = fit(CallbackEvent, "provider_reference", event.provider_reference)


def retry_delay(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, … after the 1st, 2nd, 3rd failed attempt; at most 6 hours."""
    seconds = settings.CALLBACK_RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1)
    return min(timedelta(seconds=seconds), MAX_RETRY_DELAY)


# --- The secret in the URL -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenCheck:
    verdict: UrlToken
    payment: Payment | None = None  # the payment whose own token it is (STK, MTN: per-payment secrets)


def url_token_check(event: CallbackEvent, provider: PaymentProvider) -> TokenCheck:
    """Compare the digest of the URL's secret with the secret we handed out for this kind of callback.

    Only digests are compared (the clear token is never stored), so a replay long after the request can
    still tell whether the delivery came to the right secret URL.
    """
    if not event.url_token_digest:
        return TokenCheck(UrlToken.ABSENT)
    secret = provider.callback_secret(event.kind)
    if secret is not None:
        valid = digests_match(event.url_token_digest, url_token_digest(secret)) if secret else False
        return TokenCheck(UrlToken.VALID if valid else UrlToken.INVALID)
    payment = Payment.objects.filter(provider=event.provider, callback_token_digest=event.url_token_digest).first()
    return TokenCheck(UrlToken.VALID if payment else UrlToken.INVALID, payment)


def raw_callback(event: CallbackEvent, body: bytes, token: TokenCheck) -> RawCallback:
    return RawCallback(
        kind=event.kind, body=body, headers=event.headers, client_ip=event.client_ip, url_token=token.verdict
    )
