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
from time import monotonic

from django.conf import settings
from django.db.models import Q
from django.tasks import task
from django.utils import timezone

from donor.notifications import notices_send
from payments.models import QueuedFlag

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


def _relay_enqueue() -> None:
    relay = notices_relay
    if relay.get_backend().supports_priority:
        relay = relay.using(priority=RELAY_PRIORITY)
    relay.enqueue()


@task()
def notices_relay() -> str:
    """The outbox relay for every due notice, queued once per batch of credits (not once per donation): clear the
    flag, then send until nothing is due; after RELAY_RUN_SECONDS hand over to a fresh run."""
    flag_clear(RELAY)
    sent = failed = 0
    started = monotonic()
    while True:
        counts = notices_send(limit=RELAY_CHUNK)
        sent, failed = sent + counts["sent"], failed + counts["failed"] + counts["dead"]
        if not any(counts.values()):
            break
        if monotonic() - started > RELAY_RUN_SECONDS:
            notices_relay_queue()
            break
    return f"sent {sent}, failed {failed}"
