"""Payments per provider and currency for one day; `--format csv`: the settlement file for finance."""

from datetime import date, datetime, time, timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from payments.providers.registry import PROVIDER_CLASSES
from payments.selectors import payments_report, settlement_csv, settlement_rows, settlement_totals


class Command(BaseCommand):
    help = (
        "The day's payments per provider: completed (with amounts), failed, still pending. --format csv prints "
        "one row per payment or refund that ended that day (our reference, the provider's reference and "
        "receipt, amount, currency, status, time) to hold against the provider's statement."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", help="YYYY-MM-DD (default: today, in TIME_ZONE)")
        parser.add_argument("--format", choices=("text", "csv"), default="text")
        parser.add_argument("--provider", choices=sorted(PROVIDER_CLASSES), help="Only this provider")

    def handle(self, *args, date: str | None = None, format: str = "text", provider: str | None = None, **options):
        day = self._day(date)
        start = timezone.make_aware(datetime.combine(day, time.min))
        end = start + timedelta(days=1)
        if format == "csv":
            self.stdout.write(settlement_csv(settlement_rows(start=start, end=end, provider=provider)), ending="")
            return
        report = payments_report(start=start, end=end)
        rows = [r for r in report["rows"] if not provider or r["provider"] == provider]
        self.stdout.write(f"Payments on {day.isoformat()}")
        self.stdout.write(
            f"{'provider':<10} {'currency':<8} {'completed':>9} {'amount':>14} {'failed':>7} {'pending':>8}"
        )
        for row in rows:
            self.stdout.write(
                f"{row['provider']:<10} {row['currency']:<8} {row['completed']:>9} "
                f"{row['completed_amount'] or 0:>14,} {row['failed']:>7} {row['pending']:>8}"
            )
        if not rows:
            self.stdout.write("(no payments)")
        totals = settlement_totals(settlement_rows(start=start, end=end, provider=provider))
        for (code, currency), net in sorted(totals.items()):
            self.stdout.write(f"settled net (payments − refunds that ended today) {code} {currency}: {net:,}")
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
