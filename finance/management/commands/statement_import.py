"""Import a provider's statement export (docs/api.md "Month close")."""

from decimal import Decimal
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from finance.parsers import PARSERS, StatementInvalid, money
from finance.services.imports import StatementRefused, statement_import

MAX_SHOWN = 50


class Command(BaseCommand):
    help = (
        "Import a provider statement (M-Pesa organisation statement CSV, or the generic CSV for any provider). "
        "The same file or lines already imported change nothing; one bad line and nothing of the file is stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--provider", required=True, help=f"One of {', '.join(sorted(PARSERS))}")
        parser.add_argument("file", help="The export (CSV)")
        parser.add_argument("--opening", help="Opening balance, when the file does not give it")
        parser.add_argument("--closing", help="Closing balance, when the file does not give it")

    def handle(
        self, *args, provider: str, file: str, opening: str | None = None, closing: str | None = None, **options
    ):
        if provider not in PARSERS:
            raise CommandError(f"--provider {provider!r}: one of {', '.join(sorted(PARSERS))}.")
        path = Path(file)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"{file}: cannot read it ({exc.strerror or exc}).") from None
        try:
            result = statement_import(
                provider=provider,
                raw=raw,
                filename=path.name,
                opening_balance=self._amount("--opening", opening),
                closing_balance=self._amount("--closing", closing),
            )
        except StatementInvalid as bad:
            lines = [f"line {n}: {text}" if n else text for n, text in bad.problems[:MAX_SHOWN]]
            more = len(bad.problems) - MAX_SHOWN
            if more > 0:
                lines.append(f"… and {more} more")
            raise CommandError(
                f"{file}: nothing imported, {len(bad.problems)} problem(s):\n" + "\n".join(lines)
            ) from None
        except StatementRefused as refused:
            raise CommandError(f"{file}: {refused}.") from None
        statement = result.statement
        if not result.created:
            self.stdout.write(f"{file}: imported before as statement {statement.pk}; nothing changed.")
            return
        self.stdout.write(
            f"statement {statement.pk}: {provider} {statement.period_start:%Y-%m-%d %H:%M} to "
            f"{statement.period_end:%Y-%m-%d %H:%M} {statement.currency}: {result.new_lines} new line(s), "
            f"{result.duplicate_lines} already known, {result.skipped} skipped; credits {statement.credits}, "
            f"debits {statement.debits}, fees {statement.fees}"
        )

    @staticmethod
    def _amount(option: str, text: str | None) -> Decimal | None:
        if text is None:
            return None
        try:
            return money(text, what=option, allow_negative=True)
        except ValueError as exc:
            raise CommandError(f"{exc}.") from None
