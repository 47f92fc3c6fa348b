"""Write the statement a provider would send for what the sandbox processed (docs/api.md "Month close")."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from finance.parsers import PARSERS
from finance.sandbox_export import PLANTS, sandbox_statement
from finance.services.close import month_bounds


class Command(BaseCommand):
    help = (
        "A generic-CSV statement of the month's completed payments, payouts and refunds of one provider, as the "
        "sandbox processed them (only with PAYMENTS_SANDBOX_URL set); --plant adds an anomaly to see it caught."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--provider", required=True, help=f"One of {', '.join(sorted(PARSERS))}")
        parser.add_argument("--month", required=True, help="YYYY-MM")
        parser.add_argument("--plant", default="none", help=f"One of {', '.join(PLANTS)}")
        parser.add_argument("--output", help="Write to this file (default: standard output)")

    def handle(self, *args: object, provider: str, month: str, plant: str, output: str | None, **options: object):
        if not settings.PAYMENTS_SANDBOX_URL:
            raise CommandError(
                "Only against the sandbox (PAYMENTS_SANDBOX_URL is not set): a real provider's "
                "statement comes from its portal."
            )
        if provider not in PARSERS:
            raise CommandError(f"--provider {provider!r}: one of {', '.join(sorted(PARSERS))}.")
        if plant not in PLANTS:
            raise CommandError(f"--plant {plant!r}: one of {', '.join(PLANTS)}.")
        try:
            month_bounds(month)
        except ValueError as exc:
            raise CommandError(f"--month: {exc}.") from None
        text = sandbox_statement(provider, month, plant=plant)
        if output:
            Path(output).write_text(text)
            self.stdout.write(f"{output}: {len(text.splitlines()) - 6} line(s)")
        else:
            self.stdout.write(text, ending="")
