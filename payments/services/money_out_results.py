"""The results of money we send: reading them, matching them, and deciding what they may move.

Split from the lifecycle (money_out.py) because a result arrives three ways — a callback, a status query
(`reconcile`), a person applying a held one (`apply_held`) — and each must match within its rail and kind and
settle through the same `settle_outcome`. A result callback runs the shared callback steps
(callback_steps.py); `ResultRole` is its decision. Also here: what waits for a person (the watchdog, the
dashboard).
"""

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from patients.services import patient_lock
from payments.callback_urls import callback_url
from payments.models import CallbackEvent, MoneyOut, fit
from payments.providers.base import CallbackMalformed, CallbackTrust, ProviderError, Settlement
from payments.services.audit import audit_record
from payments.services.callback_steps import Delivery, Parsed, Role, callback_steps, held
from payments.services.inbox import CallbackOutcome, Outcome, callback_event_mark
from payments.services.money_out import (
    CHECK_EVERY,
    DONE,
    PENDING,
    SENT_DEADLINE,
    STUCK_SENDING_AFTER,
    Flow,
    MoneyOutRefused,
    S,
    Settled,
    Staff,
    Verdict,
    _kind,
    _kinds,
    _move,
    funds_available,
    held_results,
    require,
    settle,
    settle_outcome,
)

logger = logging.getLogger("payments.money_out")


def rerun_unmatched(flow: Flow, obj: MoneyOut) -> None:
    """Results that came before the request's answer named an id we had not stored yet: run them now."""
    obj.refresh_from_db()
    names = Q(our_reference=obj.reference) | (
        Q(provider_reference=obj.provider_reference) if obj.provider_reference else Q(pk__in=[])
    )
    for event in CallbackEvent.objects.filter(
        names, provider=obj.provider, status=CallbackEvent.Status.FAILED, kind__in=_kinds(flow, obj.provider)
    ):
        event.attempts += 1
        try:
            handle_callback(flow, event=event, body=event.body.encode(), live=False)
        except Exception:  # the money was sent: never fail the send for this; the sweeper runs it again
            logger.exception("Re-running callback %s for %s %s failed", event.pk, flow.name, obj.reference)


def apply_held(flow: Flow, event: CallbackEvent, by: Staff) -> MoneyOut:
    """A person checked the provider's portal and applies a held result as it stands (audited)."""
    require(by, f"payments.resolve_{flow.name}", f"apply {flow.name} results")
    provider = flow.provider(event.provider)
    try:
        verdict = flow.parse(provider, event.kind, event.body.encode())
    except CallbackMalformed as exc:
        raise MoneyOutRefused(f"Callback #{event.pk} cannot be read: {exc}.") from exc
    obj = _match(flow, event.provider, verdict)
    if obj is None or provider.callback_role(event.kind) == flow.timeout_role:
        raise MoneyOutRefused(f"Callback #{event.pk} names no {flow.name} result to apply.")
    settled = settle(flow, obj.pk, verdict)
    callback_event_mark(event, CallbackEvent.Status.PROCESSED, error=f"applied by hand by {by}")
    audit_record(
        actor=by,
        action=f"{flow.name}.apply_result",
        target=f"{flow.name} {obj.reference}",
        detail=f"callback #{event.pk}: {settled.status}",
    )
    return settled


def _match(flow: Flow, provider_code: str, verdict: Verdict, *, lock: bool = False) -> Any:
    """The one it names, within its rail and kind; an empty id never matches anything."""
    rows = flow.model.objects.select_for_update() if lock else flow.model.objects.all()
    for names in flow.matches(verdict):
        found = rows.filter(names, provider=provider_code).order_by("-pk").first()
        if found is not None:
            return found
    return None


class ResultRole(Role):
    """A result or queue-timeout callback of one flow, applied to the one payout or refund it names."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.what = f"{flow.name} callback"

    def provider(self, event: CallbackEvent) -> Any:
        return self.flow.provider(event.provider)

    def no_provider(self, event: CallbackEvent) -> CallbackOutcome:
        return held(event, f"{event.provider} has no {self.flow.name}s")

    def parse(self, provider: Any, event: CallbackEvent, body: bytes) -> Parsed:
        verdict = self.flow.parse(provider, event.kind, body)
        return Parsed(verdict, verdict.our_reference, verdict.provider_reference)

    def decide(self, delivery: Delivery) -> CallbackOutcome:
        flow, event, provider, verdict = self.flow, delivery.event, delivery.provider, delivery.value
        obj = _match(flow, event.provider, verdict)
        if obj is None:
            if delivery.trust != CallbackTrust.TRUSTED:
                callback_event_mark(event, CallbackEvent.Status.REJECTED, error=f"unknown {flow.name}")
                return CallbackOutcome(Outcome.UNKNOWN_REFERENCE, 404, f"No {flow.name} with this reference.")
            # Authentic, but it may have overtaken the request's answer: never thrown away. Run again when the
            # answer is stored, retried with backoff, parked as dead (the watchdog alerts) after the last attempt.
            callback_event_mark(event, CallbackEvent.Status.FAILED, error=f"names no {flow.name} we know yet")
            return CallbackOutcome(Outcome.ACCEPTED, 200, "Callback received")
        event.our_reference = obj.reference
        if provider.callback_role(event.kind) == flow.timeout_role:
            return self._timed_out(delivery, obj)
        if not delivery.on_its_word:
            # Believed only when the provider's own status query says the same; else a person decides.
            said = _ask(flow, provider, obj) if Settlement.STATUS_QUERY in flow.settled_by(provider) else None
            if said is None or said.outcome != verdict.outcome:
                return held(event, f"{flow.name} result not confirmed: apply it after checking the provider's portal")
            verdict = said
        settled, outcome, why = settle_outcome(flow, obj.pk, verdict)
        if outcome == Settled.SAME:
            callback_event_mark(event, CallbackEvent.Status.IGNORED, error=f"{obj.reference} already {settled.status}")
            return CallbackOutcome(Outcome.IGNORED, 200, "Already applied.")
        if outcome == Settled.REVIEW:
            return held(event, why)
        callback_event_mark(event, CallbackEvent.Status.PROCESSED)
        return CallbackOutcome(Outcome.ACCEPTED, 200, "Callback received")

    def _timed_out(self, delivery: Delivery, obj: MoneyOut) -> CallbackOutcome:
        """The provider's queue gave up on it: it may or may not have moved the money."""
        flow, event = self.flow, delivery.event
        if not delivery.on_its_word:
            return held(event, "queue timeout not applied on its own word")
        now = timezone.now()
        moved = _move(
            flow,
            obj,
            S.AMBIGUOUS,
            needs_review=True,
            next_check_at=now + CHECK_EVERY,
            updated_at=now,
            result_desc=f"Timed out in {flow.display(obj.provider)}'s queue",
        )
        if not moved and obj.status != S.AMBIGUOUS:
            return held(event, f"queue timeout for {flow.name} {obj.reference} in {obj.status}")
        callback_event_mark(event, CallbackEvent.Status.PROCESSED, error="queue timeout: ambiguous")
        return CallbackOutcome(Outcome.ACCEPTED, 200, "Callback received")


def handle_callback(flow: Flow, *, event: CallbackEvent, body: bytes, live: bool) -> CallbackOutcome:
    """A result or queue-timeout callback through the shared steps and this flow's decision."""
    return callback_steps(ResultRole(flow), event=event, body=body, live=live)


def _ask(flow: Flow, provider: Any, obj: MoneyOut) -> Verdict | None:
    try:
        return flow.query(provider, obj)
    except ProviderError as error:
        logger.warning("%s %s: status query failed: %s", flow.name.title(), obj.reference, error.message)
        return None


def reconcile(flow: Flow, *, limit: int = 200) -> int:
    """Ask rails that have a status query about what awaits a result (and what is stuck `sending`, by the id
    stored before sending). Returns how many were asked."""
    now = timezone.now()
    polled = [
        code
        for code in settings.PAYMENT_PROVIDERS
        if (p := flow.provider(code)) is not None and Settlement.STATUS_QUERY in flow.settled_by(p)
    ]
    # Other rails' results come by callback, or a person settles them (the watchdog says when one is late).
    due = flow.model.objects.filter(provider__in=polled).filter(
        Q(status__in=[S.SENT, S.AMBIGUOUS], next_check_at__lte=now)
        | Q(status=S.SENDING, approved_at__lt=now - STUCK_SENDING_AFTER)
        & (Q(next_check_at__isnull=True) | Q(next_check_at__lte=now))
    )
    asked = 0
    for obj in due.order_by("next_check_at", "pk")[:limit]:
        flow.model.objects.filter(pk=obj.pk).update(next_check_at=now + CHECK_EVERY)
        said = _ask(flow, flow.provider(obj.provider), obj)
        asked += 1
        if said is not None and said.outcome != PENDING:
            settle(flow, obj.pk, replace(said, description=said.description or "status query"))
    return asked


@dataclass(frozen=True)
class Waiting:
    """What of one flow waits for a person (the watchdog alerts on each, the dashboard counts them)."""

    review: int  # flagged: a late, contradicting or mismatched result
    ambiguous: int  # the provider may have moved the money
    stuck_sending: int  # the sending process died before any answer (polled where the rail has a query)
    overdue: int  # sent, and no result within SENT_DEADLINE
    held_results: int  # result callbacks held for a person or still naming nothing we know


def waiting_for_a_person(flow: Flow, *, now: datetime) -> Waiting:
    rows = flow.model.objects
    return Waiting(
        review=rows.filter(needs_review=True).exclude(status=S.AMBIGUOUS).count(),
        ambiguous=rows.filter(status=S.AMBIGUOUS).count(),
        stuck_sending=rows.filter(status=S.SENDING, approved_at__lt=now - STUCK_SENDING_AFTER).count(),
        overdue=rows.filter(status=S.SENT, sent_at__lt=now - SENT_DEADLINE).count(),
        held_results=held_results(flow).count(),
    )


def approve(flow: Flow, obj_id: int, by: Staff, *, receipt: str = "") -> MoneyOut:
    """The checker's step: a different person approves; the claim (→ sending) and the send happen once."""
    require(by, f"payments.approve_{flow.name}", f"approve {flow.name}s")
    with transaction.atomic():
        obj = flow.model.objects.select_for_update().get(pk=obj_id)
        if obj.requested_by_id == by.pk:
            raise MoneyOutRefused(f"A {flow.name} must be approved by someone other than its requester.")
        if obj.status != S.REQUESTED:
            raise MoneyOutRefused(f"{flow.name.title()} {obj.reference} is {obj.status}, not awaiting approval.")
        flow.before_approve(obj, receipt.strip())
        patient_id = flow.patient_id(obj)
        if patient_id is not None and obj.amount > funds_available(patient_lock(patient_id=patient_id), exclude=obj):
            raise MoneyOutRefused(f"The patient's funds not yet paid out no longer cover this {flow.name}.")
        _move(flow, obj, S.SENDING, approved_by=by, approved_at=timezone.now(), updated_at=timezone.now())
        manual = getattr(obj, "manual", False)
        detail = f"recorded as paid back outside ({receipt.strip()})" if manual else "sending"
        audit_record(actor=by, action=f"{flow.name}.approve", target=f"{flow.name} {obj.reference}", detail=detail)
    if manual:
        return settle(flow, obj.pk, Verdict(DONE, receipt=receipt.strip(), description="refunded by hand"))
    return _send(flow, obj)


def _send(flow: Flow, obj: MoneyOut) -> MoneyOut:
    provider = flow.provider(obj.provider)
    secret = provider.callback_secret(_kind(provider, flow.result_role)) or ""
    chosen = flow.chosen_id(provider, obj)
    if chosen:  # stored before the request leaves: a result or a status query finds it even if the answer is lost
        flow.model.objects.filter(pk=obj.pk).update(provider_reference=fit(flow.model, "provider_reference", chosen))
        obj.provider_reference = chosen
    urls = (callback_url(provider, role, secret) for role in (flow.result_role, flow.timeout_role))
    try:
        sent = flow.send(provider, obj, *urls)
    except ProviderError as error:
        # Refused, or never reached → failed, nothing moved. Timed out or cut off after sending → we cannot
        # know: ambiguous, never re-sent. Only from `sending`: a result may have settled it meanwhile.
        to = S.AMBIGUOUS if error.ambiguous else S.FAILED
        now = timezone.now()
        extra = {"next_check_at": now + CHECK_EVERY} if to == S.AMBIGUOUS else {"completed_at": now}
        moved = _move(
            flow,
            obj,
            to,
            result_desc=fit(flow.model, "result_desc", error.message),
            needs_review=to == S.AMBIGUOUS,
            updated_at=now,
            **extra,
        )
        logger.warning(
            "%s %s not sent (%s): %s", flow.name.title(), obj.reference, to if moved else "settled", error.message
        )
        obj.refresh_from_db()
        return obj
    now = timezone.now()
    _move(flow, obj, S.SENT, sent_at=now, next_check_at=now + CHECK_EVERY, updated_at=now)
    if sent.provider_reference:
        flow.model.objects.filter(pk=obj.pk, provider_reference__isnull=True).update(
            provider_reference=fit(flow.model, "provider_reference", sent.provider_reference)
        )
    logger.info("%s %s sent to %s (%s)", flow.name.title(), obj.reference, obj.provider, sent.provider_reference)
    if sent.verdict is not None and sent.verdict.outcome != PENDING:
        settle(flow, obj.pk, sent.verdict)
    elif not flow.settled_by(provider) & {Settlement.CALLBACK, Settlement.STATUS_QUERY}:
        # Not final, and this rail has no way to tell us later: a person, now rather than never.
        _move(
            flow,
            obj,
            S.AMBIGUOUS,
            needs_review=True,
            updated_at=timezone.now(),
            result_desc=f"{flow.display(obj.provider)} answered with no final result and cannot say later",
        )
    rerun_unmatched(flow, obj)
    obj.refresh_from_db()
    return obj
