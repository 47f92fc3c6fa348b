"""Poll providers for pending payments and finish inbox events that never settled (the sweeper)."""

import logging
import re
import time
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from payments.models import Payment
from payments.services.reconcile import payments_reconcile

logger = logging.getLogger("payments.reconcile")
DURATION_RE = re.compile(r"^(\d+)([smhd]?)$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


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
        while True:
            try:
                self._run_once(age, reference, limit)
            except Exception as exc:  # a database blip must not end --loop; a single run reports and fails
                if loop is None:
                    raise CommandError(f"Reconciliation stopped: {type(exc).__name__}: {exc}") from exc
                logger.exception("Reconciliation run failed; trying again in %s s", loop)
                self.stderr.write(f"run failed ({type(exc).__name__}: {exc}); next run in {loop} s")
            if loop is None:
                return
            time.sleep(loop)

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
            f"(settled {report.events_settled}, dead {report.events_dead})"
        )
