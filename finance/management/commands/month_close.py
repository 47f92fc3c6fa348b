"""The month close report of one provider (docs/api.md "Month close")."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from finance.parsers import PARSERS
from finance.services.close import close_month, month_bounds, report_csv, summary


class Command(BaseCommand):
    help = (
        "Match a provider's imported statement lines of a month against the ledger, prove each statement's "
        "balances, record what disagrees as exceptions (once) and report; --format csv prints every finding."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--provider", required=True, help=f"One of {', '.join(sorted(PARSERS))}")
        parser.add_argument("--month", required=True, help="YYYY-MM (in TIME_ZONE)")
        parser.add_argument("--format", default="text", help="text or csv")

    def handle(self, *args, provider: str, month: str, format: str = "text", **options):
        if provider not in PARSERS:
            raise CommandError(f"--provider {provider!r}: one of {', '.join(sorted(PARSERS))}.")
        if format not in ("text", "csv"):
            raise CommandError(f"--format {format!r}: text or csv.")
        try:
            month_bounds(month)
        except ValueError as exc:
            raise CommandError(f"--month: {exc}.") from None
        report = close_month(provider, month)
        if format == "csv":
            self.stdout.write(report_csv(report), ending="")
            return
        self.stdout.write(f"Month close {provider} {month}")
        for name, value in summary(report):
            self.stdout.write(f"  {name:<36} {value}")
        for proof in report.proofs:
            self.stdout.write(f"  balance, statement {proof.statement.pk}: {proof.text()}")
        for finding in report.findings:
            if finding.kind != "matched":
                self.stdout.write(
                    f"  {finding.kind:<22} {finding.reference:<20} {finding.our_reference:<28} "
                    f"statement {finding.statement_amount if finding.statement_amount is not None else '—'} "
                    f"ledger {finding.ledger_amount if finding.ledger_amount is not None else '—'} "
                    f"{finding.currency} {finding.detail}"
                )
