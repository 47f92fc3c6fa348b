"""One scheduler at a time: a database lease per scheduled job.

`reconcile_payments --loop` may be started on several hosts (or twice on one by mistake). Each cycle first takes
the job's lease (`SchedulerLease`): a conditional UPDATE that only succeeds when the lease is free, expired, or
already ours, or the INSERT of a new row, which the primary key lets only one process win. Whoever does not hold it
skips the cycle and says who does. A holder that dies frees the lease when it expires.
"""

import logging
import os
import socket
import uuid
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from payments.models import SchedulerLease

logger = logging.getLogger("payments.scheduler")


def scheduler_identity() -> str:
    """This process, as other schedulers see it in the lease (host, pid and a random suffix)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:120]


def lease_acquire(name: str, holder: str, *, seconds: int, renew: bool = True) -> bool:
    """Take (or, with `renew`, keep) the lease `name` for `seconds`. False: someone else holds it, or (renew
    off) the lease has not expired yet, which makes a lease of a day a "once a day" guard."""
    now = timezone.now()
    free = Q(expires_at__lte=now) | (Q(holder=holder) if renew else Q(pk__in=[]))
    until = now + timedelta(seconds=seconds)
    if SchedulerLease.objects.filter(free, name=name).update(holder=holder, expires_at=until):
        return True
    try:
        with transaction.atomic():
            SchedulerLease.objects.create(name=name, holder=holder, expires_at=until)
    except IntegrityError:  # it exists and is not ours: another scheduler took it first
        return False
    return True


def lease_holder(name: str) -> SchedulerLease | None:
    return SchedulerLease.objects.filter(name=name).first()


def lease_release(name: str, holder: str) -> None:
    """Give the lease back (a scheduler stopping cleanly), so another may take over at once."""
    SchedulerLease.objects.filter(name=name, holder=holder).update(expires_at=timezone.now())
