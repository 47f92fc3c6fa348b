"""Importing a provider statement: once per file, once per line, all or nothing."""

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth.models import AnonymousUser, User
from django.db import IntegrityError, transaction

from finance.models import Statement, StatementLine
from finance.parsers import PARSERS, Line, StatementInvalid
from payments.services.audit import audit_record

SAME_MOMENT = timedelta(minutes=1)


class StatementRefused(ValueError):
    """Not importable for a reason other than its lines (an unknown provider, an empty upload)."""


@dataclass(frozen=True)
class ImportResult:
    statement: Statement
    created: bool  # False: this very file was imported before; nothing changed
    new_lines: int
    duplicate_lines: int  # already known (an earlier file or the same line twice in this one)
    skipped: int  # rows left out on purpose (e.g. an M-Pesa row that is not Completed)


def statement_import(
    *,
    provider: str,
    raw: bytes,
    filename: str = "",
    source: str = "file",
    actor: User | AnonymousUser | None = None,
    opening_balance: Decimal | None = None,
    closing_balance: Decimal | None = None,
) -> ImportResult:
    """StatementInvalid (with line numbers) when any line is bad: then nothing of the file is stored."""
    if provider not in PARSERS:
        raise StatementRefused(f"unknown provider {provider!r}: one of {', '.join(sorted(PARSERS))}")
    if not raw:
        raise StatementRefused("the file is empty")
    digest = hashlib.sha256(raw).hexdigest()
    known = Statement.objects.filter(provider=provider, digest=digest).first()
    if known is not None:
        return ImportResult(known, False, 0, 0, 0)
    parsed = PARSERS[provider](raw)
    assert parsed.period_start is not None and parsed.period_end is not None  # set by every parser
    lines, repeats = _unique(parsed.lines)
    credits = sum((x.amount for x in lines if x.kind == "credit"), Decimal("0"))
    debits = sum((x.amount for x in lines if x.kind == "debit"), Decimal("0"))
    fees = sum((x.fee_total for x in lines), Decimal("0"))
    try:
        with transaction.atomic():
            statement = Statement.objects.create(
                provider=provider,
                source=source,
                filename=filename[:255],
                digest=digest,
                period_start=parsed.period_start,
                period_end=parsed.period_end,
                currency=parsed.currency,
                opening_balance=opening_balance if opening_balance is not None else parsed.opening_balance,
                closing_balance=closing_balance if closing_balance is not None else parsed.closing_balance,
                credits=credits,
                debits=debits,
                fees=fees,
                line_count=len(lines) + repeats,
                imported_by=actor if isinstance(actor, User) else None,
            )
            # Lines an overlapping file already brought: the same line is skipped, a contradicting one refuses
            # the whole file (the provider's two exports disagree: a person must look).
            stored = {
                s.line_key: s
                for s in StatementLine.objects.select_for_update().filter(
                    provider=provider, line_key__in=[x.key for x in lines]
                )
            }
            conflicts = [
                (
                    x.number,
                    f"{x.provider_reference} was imported before (line {stored[x.key].line_number} of "
                    f"statement {stored[x.key].statement_id}) with other figures",
                )
                for x in lines
                if x.key in stored and not _same(x, stored[x.key])
            ]
            if conflicts:
                raise StatementInvalid(conflicts)
            new = [x for x in lines if x.key not in stored]
            StatementLine.objects.bulk_create(
                StatementLine(
                    statement=statement,
                    provider=provider,
                    line_number=x.number,
                    line_key=x.key,
                    occurred_at=x.occurred_at,
                    provider_reference=x.provider_reference,
                    kind=x.kind,
                    amount=x.amount,
                    fee=x.fee,
                    currency=x.currency,
                    account=x.account,
                    counterparty=x.counterparty,
                    status=x.status,
                )
                for x in new
            )
            statement.new_lines, statement.duplicate_lines = len(new), len(lines) - len(new) + repeats
            statement.save(update_fields=["new_lines", "duplicate_lines"])
            audit_record(
                actor=actor,
                action="statement.import",
                target=f"statement {statement.pk}",
                detail=f"{provider} {filename} {digest[:12]}: {len(new)} new, {statement.duplicate_lines} known",
            )
    except IntegrityError:
        # Another import of the same file (or of overlapping lines) committed first: ours stored nothing.
        known = Statement.objects.filter(provider=provider, digest=digest).first()
        if known is None:
            raise
        return ImportResult(known, False, 0, 0, 0)
    return ImportResult(statement, True, len(new), statement.duplicate_lines, len(parsed.skipped))


def _unique(lines: list[Line]) -> tuple[list[Line], int]:
    """The file's lines with a repeated one (same reference, same figures) kept once; a reference twice with
    different figures is a bad file."""
    first: dict[str, Line] = {}
    problems = []
    repeats = 0
    for line in lines:
        seen = first.get(line.key)
        if seen is None:
            first[line.key] = line
        elif seen.same_as(line):
            repeats += 1
        else:
            problems.append((line.number, f"{line.provider_reference} is on line {seen.number} with other figures"))
    if problems:
        raise StatementInvalid(problems)
    return list(first.values()), repeats


def _same(line: Line, stored: StatementLine) -> bool:
    """One transaction told twice: Daraja's pull gives the time to the minute, the portal export to the
    second, so times within a minute agree."""
    return (
        abs(line.occurred_at - stored.occurred_at) < SAME_MOMENT
        and line.amount == stored.amount
        and line.fee == stored.fee
        and line.currency == stored.currency
    )
