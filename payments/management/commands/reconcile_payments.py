"""Poll providers for pending payments and finish inbox events that never settled (the sweeper).

With --loop it is the site's scheduler: each cycle runs only while it holds the `reconcile_payments` lease
(payments/services/scheduler.py), so a second scheduler on another host waits instead of running the same cycle,
and once a day it prunes finished background-task rows (TASKS_BACKEND=database keeps every one otherwise).
It also runs settings.SCHEDULED_COMMANDS (finance's statement pull and wallet balance queries), each at most
once per its interval under a lease of its own, so a failing one never stops the cycle.
"""

import logging
import re
import time
from datetime import timedelta

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from payments.models import Payment
from payments.services.reconcile import payments_reconcile
from payments.services.scheduler import lease_acquire, lease_holder, lease_release, scheduler_identity

logger = logging.getLogger("payments.reconcile")
DURATION_RE = re.compile(r"^(\d+)([smhd]?)$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
LEASE = "reconcile_payments"
PRUNE_LEASE = "prune_task_results"  # held for a day by whoever pruned last: at most one prune a day


def parse_duration(text: str) -> timedelta:
    match = DURATION_RE.match(text.strip().lower())
    if not match:
        raise CommandError(f"--older-than {text!r}: use a number with s, m, h or d, such as 10m.")
    return timedelta(seconds=int(match.group(1)) * UNITS[match.group(2)])


class Command(BaseCommand):
    help = (
        "Ask providers about pending payments that are due a check (on the backoff ladder) and re-run inbox "
        "events that never settled. --older-than or --reference checks those payments now."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--older-than", default=None, help="Check every open payment (and event) older than this now, e.g. 10m"
        )
        parser.add_argument("--reference", default=None, help="Check this payment (or donation) reference now")
        parser.add_argument("--loop", type=int, metavar="SECONDS", help="Run again every SECONDS until stopped")
        parser.add_argument("--limit", type=int, default=500, help="At most this many payments per run")

    def handle(self, *args, older_than: str | None, reference: str | None, loop: int | None, limit: int, **options):
        age = parse_duration(older_than) if older_than is not None else None
        if loop is not None and loop < 1:
            raise CommandError("--loop takes a positive number of seconds.")
        if limit < 1:
            raise CommandError("--limit must be at least 1.")
        if reference is not None:
            reference = reference.strip()
            self._check_reference(reference)
        if loop is None:
            try:
                self._run_once(age, reference, limit)
            except Exception as exc:
                raise CommandError(f"Reconciliation stopped: {type(exc).__name__}: {exc}") from exc
            return
        me = scheduler_identity()
        try:
            while True:
                try:
                    self._cycle(me, loop, age, reference, limit)
                except Exception as exc:  # a database blip must not end the scheduler
                    logger.exception("Reconciliation run failed; trying again in %s s", loop)
                    self.stderr.write(f"run failed ({type(exc).__name__}: {exc}); next run in {loop} s")
                time.sleep(loop)
        finally:
            try:
                lease_release(LEASE, me)
            except Exception:  # the database may be what stopped us; the lease then simply expires
                logger.warning("Could not release the scheduler lease; it expires by itself")

    def _cycle(self, me: str, loop: int, age: timedelta | None, reference: str | None, limit: int) -> None:
        # The lease outlives a few missed cycles, so a slow run keeps it; a dead holder frees it within that.
        if not lease_acquire(LEASE, me, seconds=max(3 * loop, 120)):
            lease = lease_holder(LEASE)
            held = f"{lease.holder} until {lease.expires_at:%H:%M:%S}" if lease else "another scheduler"
            self.stdout.write(f"skipped: the scheduler lease is held by {held}")
            return
        self._run_once(age, reference, limit)
        if settings.TASKS_BACKEND == "database" and lease_acquire(PRUNE_LEASE, me, seconds=86400, renew=False):
            call_command("prune_db_task_results", min_age_days=settings.TASK_RESULTS_KEEP_DAYS, queue_name="*",
                         verbosity=0)  # fmt: skip
            self.stdout.write(f"pruned finished task rows older than {settings.TASK_RESULTS_KEEP_DAYS} days")
        for name, arguments, seconds in settings.SCHEDULED_COMMANDS:
            # Held for the interval and not renewed: whoever took it last ran the command; none runs it again sooner.
            if seconds > 0 and lease_acquire(f"scheduled:{name}", me, seconds=seconds, renew=False):
                try:
                    call_command(name, *arguments, stdout=self.stdout, stderr=self.stderr)
                except Exception as exc:  # noqa: BLE001 (one step's failure must not end the scheduler)
                    logger.exception("Scheduled %s failed; next run after its interval", name)
                    self.stderr.write(f"{name} failed ({type(exc).__name__}: {exc})")

    def _check_reference(self, reference: str) -> None:
        payment = (
            Payment.objects.filter(Q(reference__iexact=reference) | Q(donation__reference__iexact=reference))
            .order_by("-pk")
            .first()
        )
        if payment is None:
            raise CommandError(f"No payment or donation with reference {reference!r}.")
        if payment.is_terminal:
            raise CommandError(f"{payment.reference} is already {payment.status}; there is nothing to check.")

    def _run_once(self, age: timedelta | None, reference: str | None, limit: int) -> None:
        report = payments_reconcile(older_than=age, reference=reference, limit=limit)
        for line in report.outcomes:
            self.stdout.write(f"  {line}")
        self.stdout.write(
            f"checked {report.checked}, changed {report.changed}, still pending {report.still_pending}, "
            f"errors {report.errors}; inbox events re-run {report.replayed} "
            f"(settled {report.events_settled}, dead {report.events_dead}); notices sent {report.notices_sent}"
        )
