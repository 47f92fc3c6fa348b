"""The provider's own record of money received, pulled by API and imported as a statement through the one
importer (finance.services.imports): Daraja's Pull Transactions gives the C2B transactions of the last 48
hours, by offset pages. Each pull imports only the lines no earlier import holds (one line per receipt), so
re-pulling an overlapping window changes nothing; the lines become the generic CSV (docs/providers/README.md
"Statement exports"), whose SHA-256 makes a repeated pull of the same new lines one statement."""

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import IntegrityError
from django.utils import timezone

from finance.models import Statement, StatementLine
from finance.parsers import GENERIC_COLUMNS
from finance.services.imports import statement_import
from payments.callback_urls import callback_url
from payments.providers.base import CallbackRole, PulledTransaction, StatementPull
from payments.providers.registry import get_capable, get_provider, provider_codes

MAX_PAGES = 200  # a runaway offset loop stops here and says so


@dataclass(frozen=True)
class PullResult:
    provider: str
    start: datetime
    end: datetime
    pulled: int  # transactions the provider listed (all pages)
    new_lines: int
    statement: Statement | None  # None: nothing new
    complete: bool = True  # False: stopped at MAX_PAGES


def pull_providers() -> list[str]:
    """The configured providers whose own record can be pulled by API."""
    return [code for code in provider_codes() if isinstance(get_provider(code), StatementPull)]


def statement_pull_register(*, provider: str) -> str:
    """The one-time registration for pulling (Daraja's Register Pull); the URL we give takes notices only."""
    adapter = get_capable(provider, StatementPull)
    return adapter.register_pull(callback_url=callback_url(type(adapter), CallbackRole.NOTICE))  # type: ignore[arg-type]


def statement_pull(
    *,
    provider: str,
    now: datetime | None = None,
    hours: int | None = None,
    actor: User | AnonymousUser | None = None,
) -> PullResult:
    """Pull the last `hours` (FINANCE_STATEMENT_PULL_HOURS, at most what the provider keeps) and import what is
    new. ProviderError when the provider refuses; StatementInvalid when a pulled line contradicts one already
    imported (a person must look)."""
    adapter = get_capable(provider, StatementPull)
    end = now or timezone.now()
    start = end - min(timedelta(hours=hours or settings.FINANCE_STATEMENT_PULL_HOURS), adapter.pull_window)
    pulled: list[PulledTransaction] = []
    complete = False
    for _ in range(MAX_PAGES):
        page = adapter.pull_transactions(start=start, end=end, offset=len(pulled))
        if not page:
            complete = True
            break
        pulled.extend(page)
    for attempt in (1, 2):
        try:
            statement, new = _import_new(provider, adapter.pull_currency, pulled, start, end, actor)
            break
        except IntegrityError:
            if attempt == 2:  # another pull committed the same lines between our look and our insert, twice
                raise
    return PullResult(provider, start, end, len(pulled), new, statement, complete)


def _import_new(
    provider: str,
    currency: str,
    pulled: list[PulledTransaction],
    start: datetime,
    end: datetime,
    actor: User | AnonymousUser | None,
) -> tuple[Statement | None, int]:
    unique = {t.receipt: t for t in pulled}
    known = set(
        StatementLine.objects.filter(provider=provider, line_key__in=[f"credit:{r}" for r in unique]).values_list(
            "line_key", flat=True
        )
    )
    new = sorted(
        (t for t in unique.values() if f"credit:{t.receipt}" not in known), key=lambda t: (t.occurred_at, t.receipt)
    )
    if not new:
        return None, 0
    result = statement_import(
        provider=provider,
        raw=_generic_csv(new, currency),
        filename=f"pull {timezone.localtime(start):%Y-%m-%d %H:%M} to {timezone.localtime(end):%Y-%m-%d %H:%M}",
        source="pull",
        actor=actor,
    )
    return result.statement, result.new_lines


def _generic_csv(lines: list[PulledTransaction], currency: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*GENERIC_COLUMNS, "status"])
    for t in lines:
        writer.writerow(
            [
                t.occurred_at.isoformat(),
                t.receipt,
                "credit",
                f"{t.amount:.2f}",
                "0.00",
                currency,
                t.bill_reference,
                t.msisdn,
                "Completed",
            ]
        )
    return out.getvalue().encode()
