"""python manage.py statement_pull --provider mpesa [--hours N] [--register] | --all: import the provider's
own record of money received by API (Daraja's Pull Transactions, the last 48 hours) as a statement; re-pulling
an overlapping window changes nothing. Run by the scheduler every FINANCE_STATEMENT_PULL_MINUTES."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from finance.parsers import StatementInvalid
from finance.services.pull import pull_providers, statement_pull, statement_pull_register
from payments.providers.base import ProviderError


class Command(BaseCommand):
    help = (
        "Pull the provider's C2B transactions of the last hours (Daraja's Pull Transactions) and import the new "
        "ones as a statement. --register: the one-time registration of the shortcode for pulling."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--provider", help="A provider that offers pulling (mpesa)")
        parser.add_argument("--all", action="store_true", help="Every configured provider that offers pulling")
        parser.add_argument("--hours", type=int, help="How far back (default FINANCE_STATEMENT_PULL_HOURS, max 48)")
        parser.add_argument("--register", action="store_true", help="Register the shortcode for pulling (once)")

    def handle(self, *args, provider: str | None, all: bool, hours: int | None, register: bool, **options):
        offered = pull_providers()
        if all == bool(provider):
            raise CommandError("Give --provider CODE or --all.")
        if provider and provider not in offered:
            raise CommandError(
                f"--provider {provider!r}: pulling is offered by {', '.join(offered) or 'none configured'}."
            )
        if hours is not None and hours < 1:
            raise CommandError("--hours must be at least 1.")
        for code in [provider] if provider else offered:
            try:
                if register:
                    self.stdout.write(f"{code}: {statement_pull_register(provider=code)}")
                    continue
                result = statement_pull(provider=code, hours=hours)
            except ProviderError as exc:
                raise CommandError(f"{code}: {exc}") from None
            except StatementInvalid as exc:
                raise CommandError(f"{code}: the pulled lines contradict an earlier import: {exc}") from None
            where = f"statement {result.statement.pk}" if result.statement else "nothing new"
            self.stdout.write(
                f"{code}: pulled {result.pulled} transaction(s) from {result.start:%Y-%m-%d %H:%M} to "
                f"{result.end:%Y-%m-%d %H:%M} UTC; {result.new_lines} new ({where})"
                + ("" if result.complete else "; stopped at the page limit, pull again")
            )
