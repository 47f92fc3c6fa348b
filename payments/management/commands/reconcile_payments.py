"""Poll providers for pending payments on the backoff ladder and re-run failed inbox events."""

import re
import time
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from payments.services.reconcile import payments_reconcile

DURATION_RE = re.compile(r"^(\d+)([smhd]?)$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    match = DURATION_RE.match(text.strip().lower())
    if not match:
        raise CommandError(f"--older-than {text!r}: use a number with s, m, h or d, such as 10m.")
    return timedelta(seconds=int(match.group(1)) * UNITS[match.group(2)])


class Command(BaseCommand):
    help = "Ask providers about pending payments that are due a check; re-run failed callbacks."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--older-than", default="0s", help="Only payments created before this age (e.g. 10m)")
        parser.add_argument("--loop", type=int, metavar="SECONDS", help="Run again every SECONDS until stopped")
        parser.add_argument("--limit", type=int, default=500, help="At most this many payments per run")

    def handle(self, *args, older_than: str, loop: int | None, limit: int, **options) -> None:
        age = parse_duration(older_than)
        if loop is not None and loop < 1:
            raise CommandError("--loop takes a positive number of seconds.")
        if limit < 1:
            raise CommandError("--limit must be at least 1.")
        while True:
            report = payments_reconcile(older_than=age, limit=limit)
            for line in report.outcomes:
                self.stdout.write(f"  {line}")
            self.stdout.write(
                f"checked {report.checked}, changed {report.changed}, still pending {report.still_pending}, "
                f"failed events replayed {report.replayed}"
            )
            if loop is None:
                return
            time.sleep(loop)
