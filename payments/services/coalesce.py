"""Coalesced tasks: one task queued for a backlog, not one per delivery (issue 20).

A task that works through whatever is pending (the inbox drain `callbacks_drain`, the notice relay
`notices_relay`) needs to be queued once however many deliveries arrive while it waits. `enqueue_once` does that
with a flag row (`QueuedFlag`: "one is waiting"), in the database both task backends share (django-tasks-db and
rq): a read, and only when the flag is clear a compare-and-set UPDATE; the one caller whose UPDATE matched
enqueues. The task clears the flag as its *first* step (`flag_clear`), before it looks at anything pending, so
whatever is stored after that moment either is seen by this run or finds the flag clear and queues the next one.

Failure goes towards enqueueing, never away from it: a flag that cannot be read or set (the table missing, a
database error) means the caller enqueues anyway (an extra task finds nothing and returns); a flag set for
longer than CALLBACK_RETRY_GRACE_SECONDS is taken over (its task was lost with the queue, or is stuck behind a
long one: a second drain is harmless); an enqueue that fails clears the flag again, for the next caller.
Behind all of it the sweeper and the scheduler's relay (reconcile_payments) still run everything that is due.
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from time import monotonic

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Q
from django.tasks import task
from django.utils import timezone

from donor.models import Notice
from donor.notifications import notices_send
from payments.models import CallbackEvent, QueuedFlag

logger = logging.getLogger("payments.callbacks")
DRAIN = "callback-drain"
RELAY = "notice-relay"
# How long one run of a coalesced task works before it hands over to a fresh one (queued behind other tasks).
RUN_SECONDS = 20.0


def _stale() -> timedelta:
    return timedelta(seconds=settings.CALLBACK_RETRY_GRACE_SECONDS)


def enqueue_once(name: str, enqueue: Callable[[], object]) -> bool:
    """Call `enqueue` unless a task of this name is already waiting; True when this call enqueued it."""
    now = timezone.now()
    try:
        flags = list(QueuedFlag.objects.filter(name=name).values_list("queued_at", flat=True))
        if flags and flags[0] is not None and flags[0] > now - _stale():
            return False  # one is waiting and has not started: it will see what the caller stored
        if not flags:  # first use (or a flushed table): create the row, and enqueue without relying on it
            QueuedFlag.objects.bulk_create([QueuedFlag(name=name, queued_at=now)], ignore_conflicts=True)
            taken = True
        else:
            clear = Q(queued_at__isnull=True) | Q(queued_at__lte=now - _stale())
            taken = QueuedFlag.objects.filter(clear, name=name).update(queued_at=now) == 1
        if not taken:
            return False  # another caller's compare-and-set won, and it enqueues
    except Exception:  # the flag is unusable: enqueue anyway (a spare run is harmless, a missing one is not)
        logger.exception("Flag %s unavailable; enqueueing without it", name)
        enqueue()
        return True
    try:
        enqueue()
    except Exception:
        _clear_quietly(name, now)  # so that the next caller tries again
        raise
    return True


def _clear_quietly(name: str, queued_at: datetime | None = None) -> None:
    try:
        flags = QueuedFlag.objects.filter(name=name)
        (flags.filter(queued_at=queued_at) if queued_at is not None else flags).update(queued_at=None)
    except Exception:
        logger.exception("Flag %s could not be cleared; it is taken over after %s", name, _stale())


def flag_clear(name: str) -> None:
    """A coalesced task's first step (in autocommit: committed before it looks at what is pending)."""
    _clear_quietly(name)


def notices_relay_queue() -> None:
    """Queue the relay once for every credit committed meanwhile (on commit of a batch); a queue that is down only
    delays the messages: the outbox rows are committed and the scheduler's relay sends them."""
    try:
        enqueue_once(RELAY, _relay_enqueue)
    except Exception:
        logger.exception("Notice relay not queued (task queue unavailable); the scheduler will send")


# Behind the drain on a queue that orders by priority (django-tasks-db): the credit (what the donor's page shows)
# first, the receipts (an email with its PDF costs more than the credit) after; rq's queue is FIFO.
RELAY_PRIORITY = -10
# A receipt email renders its PDF (0.1-0.2 s): the relay sends a few at a time and hands over to a fresh run after
# about a second, so a drain queued meanwhile (higher priority) is claimed next. With 20 s runs, the credits of a
# burst arriving while receipts were being sent waited ~20 s (bench/README, 2026-12-07).
RELAY_CHUNK = 5
RELAY_RUN_SECONDS = 1.0


# Receipts yield to a callback storm: on a host where the workers share the cores with gunicorn, a PDF (0.1-0.2 s of
# CPU) takes from the answers and the credits what a hundred credits cost. A storm is callbacks arriving faster than
# NOTICE_YIELD_RATE a second (over the last YIELD_WINDOW_SECONDS), or a backlog of stored callbacks not yet applied
# larger than that window holds (the credits are behind: the drain needs the worker). Then the relay sends nothing
# and looks again YIELD_WINDOW_SECONDS later; the donor's page shows "completed" from the credit, and the email
# follows the storm. A notice due for longer than NOTICE_YIELD_MAX_SECONDS is sent anyway, so a storm that never
# ends delays receipts by that much, never for ever. bench/README.md, 2026-12-07: with receipts rendering beside a
# burst, answers fell from 536/s to 324/s and credits to 0.62x the ORM reference.
YIELD_WINDOW_SECONDS = 2.0


def notices_yield() -> bool:
    """True while the relay should hold notices back: a callback storm, and nothing due for too long."""
    rate = settings.NOTICE_YIELD_RATE
    if rate <= 0:
        return False
    now = timezone.now()
    most = int(rate * YIELD_WINDOW_SECONDS)  # what the window holds at exactly NOTICE_YIELD_RATE a second
    arriving = CallbackEvent.objects.filter(received_at__gte=now - timedelta(seconds=YIELD_WINDOW_SECONDS))
    waiting = CallbackEvent.objects.filter(status=CallbackEvent.Status.RECEIVED)
    overdue_since = now - timedelta(seconds=settings.NOTICE_YIELD_MAX_SECONDS)
    try:
        if not any(rows.order_by()[most : most + 1].exists() for rows in (arriving, waiting)):  # none beyond `most`
            return False
        return not Notice.objects.filter(status=Notice.Status.PENDING, next_attempt_at__lte=overdue_since).exists()
    except DatabaseError:  # cannot tell: send (holding receipts back is an optimisation, sending them is the job)
        logger.exception("Could not tell whether callbacks are storming; the relay sends")
        return False


def _relay_enqueue(run_after: datetime | None = None) -> None:
    relay = notices_relay
    if relay.get_backend().supports_priority:
        relay = relay.using(priority=RELAY_PRIORITY)
    if run_after is not None:
        relay = relay.using(run_after=run_after)
    relay.enqueue()


@task()
def notices_relay() -> str:
    """The outbox relay for every due notice, queued once per batch of credits (not once per donation): clear the
    flag, then send until nothing is due; after RELAY_RUN_SECONDS hand over to a fresh run. During a callback storm
    (notices_yield) it queues itself YIELD_WINDOW_SECONDS later instead (where the backend can defer a task; the
    flag stays set meanwhile, so the batches' credits queue nothing more)."""
    flag_clear(RELAY)
    sent = failed = 0
    started = monotonic()
    while True:
        if notices_relay.get_backend().supports_defer and notices_yield():
            later = timezone.now() + timedelta(seconds=YIELD_WINDOW_SECONDS)
            enqueue_once(RELAY, partial(_relay_enqueue, run_after=later))
            return f"sent {sent}, failed {failed}; yielding to a callback storm"
        counts = notices_send(limit=RELAY_CHUNK)
        sent, failed = sent + counts["sent"], failed + counts["failed"] + counts["dead"]
        if not any(counts.values()):
            break
        if monotonic() - started > RELAY_RUN_SECONDS:
            notices_relay_queue()
            break
    return f"sent {sent}, failed {failed}"
