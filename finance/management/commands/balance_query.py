"""python manage.py balance_query --provider CODE [--account NAME] | --all: ask for the wallet balance(s) the
close holds statements against. MTN and Airtel answer at once; Daraja's Account Balance answers later at our
secret result URL (one without an answer in FINANCE_BALANCE_RESULT_TIMEOUT_MINUTES expires and is alerted).
Run by the scheduler every FINANCE_BALANCE_QUERY_MINUTES."""

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from finance.services.balance import balance_providers, balance_queries_expire, balance_query
from payments.providers.base import ProviderError


class Command(BaseCommand):
    help = "Ask the provider(s) for their wallet balance and keep the readings (finance's Balance readings)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--provider", help="A provider that reports balances (mpesa, mtn, airtel)")
        parser.add_argument("--all", action="store_true", help="Every configured provider that reports balances")
        parser.add_argument("--account", default="", help="One account (MTN: collection or disbursement)")

    def handle(self, *args, provider: str | None, all: bool, account: str, **options):
        offered = balance_providers()
        if all == bool(provider):
            raise CommandError("Give --provider CODE or --all.")
        if provider and provider not in offered:
            raise CommandError(
                f"--provider {provider!r}: balances come from {', '.join(offered) or 'none configured'}."
            )
        if account and not provider:
            raise CommandError("--account goes with --provider.")
        expired = balance_queries_expire(now=timezone.now())
        if expired:
            self.stderr.write(f"{expired} earlier balance query(ies) got no result in time: expired")
        failed = []
        for code in [provider] if provider else offered:
            try:
                queries = balance_query(provider=code, account=account)
            except ProviderError as exc:
                failed.append(f"{code}: {exc}")
                continue
            for query in queries:
                if query.status == query.Status.PENDING:
                    self.stdout.write(
                        f"{code} {query.account}: asked ({query.conversation_id}); the result comes later"
                    )
                    continue
                figures = ", ".join(f"{r.account} {r.available} {r.currency}" for r in query.readings.all())
                self.stdout.write(f"{code} {query.account}: {figures}")
        if failed:
            raise CommandError("; ".join(failed))
