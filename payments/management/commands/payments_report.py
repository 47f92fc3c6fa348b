"""Completed, failed and stuck payments for one day, per provider and currency."""

from datetime import date, datetime, time, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from payments.selectors import payments_report


class Command(BaseCommand):
    help = "Print the day's payments per provider: completed (with amounts), failed, still pending."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--date", help="YYYY-MM-DD (default: today, in TIME_ZONE)")

    def handle(self, *args, date: str | None = None, **options) -> None:
        day = self._day(date)
        start = timezone.make_aware(datetime.combine(day, time.min))
        report = payments_report(start=start, end=start + timedelta(days=1))
        self.stdout.write(f"Payments on {day.isoformat()}")
        self.stdout.write(
            f"{'provider':<10} {'currency':<8} {'completed':>9} {'amount':>14} {'failed':>7} {'pending':>8}"
        )
        for row in report["rows"]:
            self.stdout.write(
                f"{row['provider']:<10} {row['currency']:<8} {row['completed']:>9} "
                f"{row['completed_amount'] or 0:>14,} {row['failed']:>7} {row['pending']:>8}"
            )
        if not report["rows"]:
            self.stdout.write("(no payments)")
        self.stdout.write(f"stuck pending > 5 min (all days): {report['stuck_pending']}")
        self.stdout.write(f"payments needing review (all days): {report['needs_review']}")
        events = ", ".join(f"{k} {v}" for k, v in sorted(report["events"].items())) or "none"
        self.stdout.write(f"callbacks received: {events}")

    @staticmethod
    def _day(text: str | None) -> date:
        if not text:
            return timezone.localdate()
        try:
            return date.fromisoformat(text)
        except ValueError as exc:
            raise CommandError(f"--date {text!r}: use YYYY-MM-DD, e.g. 2026-11-23.") from exc
