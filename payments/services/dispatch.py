"""One entry point for every stored callback, whatever its kind: the webhook, replays and the sweeper.

`callback_handle` finds the role of the event's (provider, kind), runs the shared steps and that role's
decision (callback_steps.py) inside an exception boundary (a crash leaves the event `failed` with its
traceback, retried with backoff, parked as `dead` after CALLBACK_MAX_ATTEMPTS) and returns the outcome the
webhook answers with. `callback_replay` re-runs one event (with a dry run that rolls
back); `callbacks_sweep` re-runs every event left `received` or `failed` whose next attempt is due.
"""

import logging
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from time import monotonic

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.tasks import task
from django.utils import timezone
from django.utils.module_loading import import_string

from payments.models import CallbackEvent, MoneyOut
from payments.providers.base import CallbackRole, CallbackTrust
from payments.providers.registry import PROVIDER_CLASSES
from payments.services import money_out, payouts, refunds
from payments.services.callback_batch import batch_takes, callbacks_apply_batch
from payments.services.callback_steps import Delivery, Role, callback_steps, held
from payments.services.callbacks import PAYMENT, TRACEBACK_CHARS
from payments.services.coalesce import DRAIN, RUN_SECONDS, enqueue_once, flag_clear
from payments.services.inbox import ACCEPTED, CallbackOutcome, Outcome, callback_event_mark, retry_delay
from payments.services.money_out_results import ResultRole, apply_held
from payments.services.paybill import CONFIRMATION, VALIDATION

logger = logging.getLogger("payments.callbacks")


class NoticeRole(Role):
    """A callback we keep but have nothing to apply from (a provider's notification feed): authenticated like
    any other (a forged one is refused 401), stored as evidence, settled."""

    def decide(self, delivery: Delivery) -> CallbackOutcome:
        name = delivery.provider.display_name
        callback_event_mark(delivery.event, CallbackEvent.Status.PROCESSED, error=f"{name} notice: stored")
        return CallbackOutcome(Outcome.ACCEPTED, 200, "Callback received")


# What a callback is about (the role its provider declares for its kind) → its decision, after the shared steps.
HANDLERS: dict[CallbackRole, Role] = {
    CallbackRole.PAYMENT: PAYMENT,
    CallbackRole.PAYBILL_VALIDATION: VALIDATION,
    CallbackRole.PAYBILL_CONFIRMATION: CONFIRMATION,
    CallbackRole.PAYOUT_RESULT: ResultRole(payouts.FLOW),
    CallbackRole.PAYOUT_TIMEOUT: ResultRole(payouts.FLOW),
    CallbackRole.NOTICE: NoticeRole(),
    CallbackRole.REFUND_RESULT: ResultRole(refunds.FLOW),
    CallbackRole.REFUND_TIMEOUT: ResultRole(refunds.FLOW),
}
SWEEP_BATCH = 100
# What a worker may apply after we have answered: the provider's answer carries no decision of ours. A paybill
# validation is answered with accept/reject, so it is always handled in the request.
DEFERRABLE_ROLES = frozenset(HANDLERS) - {CallbackRole.PAYBILL_VALIDATION}


def callback_accept(*, event: CallbackEvent, raw_body: bytes) -> CallbackOutcome:
    """The webhook's half: handle a stored delivery now, or hand it to a task worker and answer at once.

    With CALLBACK_ACK="stored" a delivery that is authentic (or cannot be judged from its bytes alone) is
    acknowledged as soon as it is durably in the inbox; `process_callback` applies it in a worker, and the
    sweeper runs any whose task was lost (queue down, worker killed). What the provider learns from our answer
    is then only "we have it" — forged deliveries still get their 401 here, judged on the raw bytes.

    A payment callback (with CALLBACK_BATCH_SIZE > 1) queues no task of its own: it makes sure one drain is
    waiting (`callbacks_drain`, coalesced: a storm of deliveries queues a handful of drains, not one task each).
    The row is committed before the flag is read (the webhook runs in autocommit), so either the flag is still
    set — its drain has not started and will claim this row — or this call queues the next drain.
    """
    if not _deferrable(event):
        return callback_handle(event=event, raw_body=raw_body)
    try:
        if settings.CALLBACK_BATCH_SIZE > 1 and batch_takes(event):
            enqueue_once(DRAIN, callbacks_drain.enqueue)
        else:
            process_callback.enqueue(event.pk)
    except Exception:  # the queue is down: the row is stored and due for the sweeper (next_attempt_at)
        logger.exception("Callback %s stored but not queued; the sweeper will run it", event.pk)
    return CallbackOutcome(ACCEPTED, 200, "Callback received")


def _deferrable(event: CallbackEvent) -> bool:
    if settings.CALLBACK_ACK != "stored" or event.status != CallbackEvent.Status.RECEIVED:
        return False  # a duplicate of a settled delivery is answered at once, without any work
    if event.trust == CallbackTrust.REJECTED:
        return False  # marked rejected and answered 401 now
    provider = PROVIDER_CLASSES.get(event.provider)
    return provider is not None and provider.callback_role(event.kind) in DEFERRABLE_ROLES


@task()
def process_callback(event_id: int) -> str:
    """The worker's half of a callback acknowledged once stored: run it through its handler, once.

    With CALLBACK_BATCH_SIZE > 1 the task also claims up to that many other pending payment callbacks and
    applies them together (callback_batch.py); their own tasks then find them settled. A delivery already
    settled (by a batch, the sweeper, a replay, or an earlier run of this task) is left alone; two runs at once
    are safe, as for any replay (the payment's row lock and the ledger's unique constraints)."""
    if settings.CALLBACK_BATCH_SIZE > 1:
        batch = callbacks_apply_batch(event_id=event_id, size=settings.CALLBACK_BATCH_SIZE)
        for other in batch.fallback:
            _process_one(other)
        if batch.own is not None:
            return str(batch.own)
    return _process_one(event_id)


# A drain run stops after this many batches (or coalesce.RUN_SECONDS) and hands over to a fresh run, so that it
# never holds a worker for long while other tasks wait.
DRAIN_MAX_BATCHES = 200


@task()
def callbacks_drain() -> str:
    """Apply every pending payment callback, CALLBACK_BATCH_SIZE at a time, until none is claimable.

    First the flag is cleared (committed), then the inbox is read: a delivery stored after the clear is seen by
    one of this run's claims or queues the next drain itself (callback_accept). While the claims come back
    full, this run makes sure another drain is waiting (the flag again, one task, not one per batch), so a
    second worker joins a backlog instead of idling; that run finds nothing and returns if this one finishes
    first. Bounded (DRAIN_MAX_BATCHES, coalesce.RUN_SECONDS): then it queues its successor and returns.

    Nothing waits for a task that never comes: every stored delivery is due for the sweeper
    (`next_attempt_at`, CALLBACK_RETRY_GRACE_SECONDS after it was stored or claimed), whatever happens to the
    flag or the queue, so a lost drain (the queue flushed, a worker killed mid-run) delays a credit by at most
    the grace plus one sweep interval of reconcile_payments, never more."""
    flag_clear(DRAIN)
    size = max(2, settings.CALLBACK_BATCH_SIZE)
    started = monotonic()
    batches = claimed = 0
    while True:
        batch = callbacks_apply_batch(event_id=None, size=size)
        for other in batch.fallback:
            _process_one(other)
        if not batch.claimed:
            break
        batches, claimed = batches + 1, claimed + batch.claimed
        if batches >= DRAIN_MAX_BATCHES or monotonic() - started > RUN_SECONDS:
            enqueue_once(DRAIN, callbacks_drain.enqueue)  # the rest is the next run's
            break
        if batch.claimed >= size:
            enqueue_once(DRAIN, callbacks_drain.enqueue)  # more than one batch waits: room for a second worker
    return f"{claimed} in {batches} batches"


def _process_one(event_id: int) -> str:
    event = CallbackEvent.objects.filter(pk=event_id).first()
    if event is None or event.is_settled:
        return str(Outcome.SETTLED)
    return str(callback_handle(event=event, in_worker=True).code)


def callback_handle(*, event: CallbackEvent, raw_body: bytes | None = None, in_worker: bool = False) -> CallbackOutcome:
    """Handle a stored delivery: the shared steps (authenticate → parse → attach the references) and its role's
    decision, once. `raw_body`: the bytes as they arrived (secrets not yet redacted). `in_worker`: run by a
    task worker, which verifies an untrusted payment callback itself rather than queueing a second task."""
    if event.status == CallbackEvent.Status.DUPLICATE:
        logger.info("Callback %s repeats #%s; answered without re-processing", event.pk, event.duplicate_of_id)
        return CallbackOutcome(Outcome.DUPLICATE, 200, "Duplicate delivery; already received.")
    role = _role(event)
    event.attempts += 1
    live = raw_body is not None
    try:
        if role is None:
            return _unhandled(event)
        body = raw_body if raw_body is not None else event.body.encode()
        return callback_steps(role, event=event, body=body, live=live, in_worker=in_worker)
    except Exception as exc:  # the boundary: the event stays stored and replayable; answer 2xx, it is safe
        logger.exception("Callback %s (%s/%s) failed while processing", event.pk, event.provider, event.kind)
        try:
            event.traceback = traceback.format_exc()[-TRACEBACK_CHARS:]  # why, for the admin's change page
            callback_event_mark(event, CallbackEvent.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
        except DatabaseError:
            # The database went away mid-way: the row is stored (`received`, due for the sweeper) but we cannot
            # say more. 503, so the provider sends it again; the resend is handled, not taken as a duplicate.
            logger.error("Callback %s: the database is unavailable; left for the sweeper and the resend", event.pk)
            return CallbackOutcome(
                Outcome.UNAVAILABLE, 503, "We could not finish handling the callback; please send it again."
            )
        return CallbackOutcome(Outcome.FAILED, 200, "Received; processing will be retried.")


def _role(event: CallbackEvent) -> Role | None:
    provider = PROVIDER_CLASSES.get(event.provider)
    role = provider.callback_role(event.kind) if provider else None
    return (HANDLERS.get(role) or _plugged(role)) if role else None


def _plugged(role: CallbackRole) -> Role | None:
    """A role another app handles (settings.CALLBACK_ROLE_HANDLERS: role → dotted path of its Role class):
    finance records balance results, and payments never imports finance."""
    path = settings.CALLBACK_ROLE_HANDLERS.get(str(role))
    return import_string(path)() if path else None


def _unhandled(event: CallbackEvent) -> CallbackOutcome:
    """A kind nobody handles (a provider removed, a route renamed): kept for a person, never retried."""
    return held(event, f"no handler for {event.provider}/{event.kind}")


def callback_replay(*, event: CallbackEvent, dry_run: bool = False) -> CallbackOutcome:
    """Run a stored callback through its handler again. A dry run shows the outcome and rolls back."""
    if event.status == CallbackEvent.Status.DUPLICATE:
        event.status = CallbackEvent.Status.RECEIVED  # replaying a duplicate on purpose: process it
    if not dry_run:
        return callback_handle(event=event)
    with transaction.atomic():
        outcome = callback_handle(event=event)
        transaction.set_rollback(True)  # on_commit hooks (tasks, notifications) are discarded too
    event.refresh_from_db()
    return outcome


@dataclass
class SweepReport:
    examined: int = 0
    settled: int = 0
    still_open: int = 0
    dead: int = 0
    lines: list[str] = field(default_factory=list)


def callbacks_sweep(*, received_before: datetime | None = None, limit: int = 500) -> SweepReport:
    """Re-run inbox events left `received` (their worker died, their verification task was lost) or `failed`.

    Due events are those whose next attempt time has come, or — when an operator gives `received_before` —
    every open event received before that moment. Rows are claimed with select_for_update(skip_locked=True)
    and pushed to their next attempt time before they run, so several hosts can sweep at once.
    """
    report = SweepReport()
    open_statuses = [CallbackEvent.Status.RECEIVED, CallbackEvent.Status.FAILED]
    now = timezone.now()
    due = Q(next_attempt_at__lte=now) | Q(next_attempt_at__isnull=True)
    if received_before is not None:
        due |= Q(received_at__lte=received_before)
    swept: set[int] = set()
    while report.examined < limit:
        with transaction.atomic():
            batch = list(
                CallbackEvent.objects.select_for_update(skip_locked=True)
                .filter(due, status__in=open_statuses)
                .exclude(pk__in=swept)
                .order_by("received_at", "pk")[: min(SWEEP_BATCH, limit - report.examined)]
            )
            for event in batch:
                CallbackEvent.objects.filter(pk=event.pk).update(next_attempt_at=now + retry_delay(event.attempts + 1))
        if not batch:
            break
        for event in batch:
            swept.add(event.pk)
            report.examined += 1
            outcome = callback_replay(event=event)
            event.refresh_from_db(fields=["status"])
            if event.status == CallbackEvent.Status.DEAD:
                report.dead += 1
            elif event.is_settled:
                report.settled += 1
            else:
                report.still_open += 1
            line = f"event #{event.pk} {event.provider}/{event.kind}: {outcome.code} -> {event.status}"
            report.lines.append(line)
            logger.info("Swept %s", line)
    return report


MONEY_OUT_FLOWS: dict[CallbackRole, money_out.Flow] = {
    CallbackRole.PAYOUT_RESULT: payouts.FLOW,
    CallbackRole.REFUND_RESULT: refunds.FLOW,
}


def money_out_apply_held(*, event_id: int, applied_by: money_out.Staff) -> MoneyOut:
    """A payout or refund result held for a person (trust off, unsigned, no status query), applied as it stands
    after they checked the provider's portal. Audited; needs the payout's or refund's resolve permission."""
    event = CallbackEvent.objects.get(pk=event_id)
    cls = PROVIDER_CLASSES.get(event.provider)
    flow = MONEY_OUT_FLOWS.get(cls.callback_role(event.kind)) if cls else None  # type: ignore[arg-type]
    if flow is None:
        raise money_out.MoneyOutRefused(f"Callback #{event.pk} is not a payout or refund result.")
    if event.status not in (CallbackEvent.Status.REVIEW, CallbackEvent.Status.FAILED, CallbackEvent.Status.DEAD):
        raise money_out.MoneyOutRefused(f"Callback #{event.pk} is {event.status}, not held.")
    return apply_held(flow, event, applied_by)
