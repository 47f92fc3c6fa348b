"""The month close of one provider: its statement lines held against the ledger, balances proven, the
findings kept as exceptions (finance.models.Discrepancy) for a person to work to an end.

Periods: a ledger movement belongs to the month (TIME_ZONE, half-open) of its completion, a statement line to
the month it occurred in, and a statement's balance proof to the month its period starts in; so each belongs to
exactly one close. A line is matched by the provider's reference to a payment (credit), payout or refund (debit)
of any month: a donation completed at 23:59 on the 31st may be on the provider's next-day line.
"""

import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from config.csv_safety import SafeCsvWriter
from finance.models import Discrepancy, Statement, StatementLine
from finance.services.balance_check import ReadingCheck, balance_reading_check
from payments.models import Payment, Payout, Refund

ZERO = Decimal("0.00")


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """`YYYY-MM` → its first moment and the next month's first moment, in TIME_ZONE. ValueError if malformed."""
    try:
        year_text, month_text = month.split("-")
        if len(year_text) != 4 or len(month_text) != 2:
            raise ValueError
        zone = timezone.get_current_timezone()
        start = datetime(int(year_text), int(month_text), 1, tzinfo=zone)
    except ValueError:
        raise ValueError(f"month {month!r}: use YYYY-MM, e.g. 2026-11") from None
    return start, datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=zone)


@dataclass(frozen=True)
class Finding:
    kind: str  # matched, mismatched, statement_only, ledger_only_expected, ledger_only
    reference: str  # the provider's
    our_reference: str = ""
    statement_amount: Decimal | None = None
    ledger_amount: Decimal | None = None
    currency: str = ""
    detail: str = ""


@dataclass(frozen=True)
class BalanceProof:
    statement: Statement
    opening: Decimal | None
    credits: Decimal
    debits: Decimal
    fees: Decimal
    closing: Decimal | None

    @property
    def expected_closing(self) -> Decimal | None:
        return None if self.opening is None else self.opening + self.credits - self.debits - self.fees

    @property
    def difference(self) -> Decimal | None:
        expected = self.expected_closing
        return None if expected is None or self.closing is None else self.closing - expected

    @property
    def holds(self) -> bool | None:
        return None if self.difference is None else self.difference == 0

    def text(self) -> str:
        if self.holds is None:
            return "not proven: the statement gives no opening or closing balance"
        return (
            f"{self.opening} + {self.credits} − {self.debits} − {self.fees} = {self.expected_closing}; "
            f"the statement's closing is {self.closing}" + ("" if self.holds else f" (difference {self.difference})")
        )


@dataclass
class CloseReport:
    provider: str
    month: str
    findings: list[Finding] = field(default_factory=list)
    fees: Decimal = ZERO
    credits: Decimal = ZERO
    debits: Decimal = ZERO
    lines: int = 0
    duplicate_lines: int = 0
    statements: int = 0
    proofs: list[BalanceProof] = field(default_factory=list)
    readings: list[ReadingCheck] = field(default_factory=list)  # closing balances held against wallet readings
    exceptions_open: int = 0
    exceptions_resolved: int = 0

    def of(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    @property
    def matched_amount(self) -> Decimal:
        return sum((f.statement_amount or ZERO for f in self.of("matched")), ZERO)

    def counts(self) -> dict[str, int]:
        kinds = ("matched", "mismatched", "statement_only", "ledger_only_expected", "ledger_only")
        return {kind: len(self.of(kind)) for kind in kinds}


def _by_reference(objects: Iterable[Payment | Payout | Refund]) -> dict[str, Payment | Payout | Refund]:
    found: dict[str, Payment | Payout | Refund] = {}
    for obj in objects:
        for ref in (obj.provider_reference, obj.receipt):
            if ref:
                found.setdefault(ref, obj)
    return found


def _refs(model: type[models.Model], provider: str, refs: list[str]) -> models.QuerySet:
    return model._default_manager.filter(provider=provider).filter(
        models.Q(provider_reference__in=refs) | models.Q(receipt__in=refs)
    )


def _done(obj: Payment | Payout | Refund) -> bool:
    if isinstance(obj, Payment):
        return obj.status == Payment.Status.SUCCEEDED
    return obj.status == type(obj).DONE


def close_month(provider: str, month: str, *, now: datetime | None = None) -> CloseReport:
    """Match the month, record what disagrees (once: a finding seen again is not added twice), clear what a
    later import settled, and report. Changes nothing in the ledger."""
    now = now or timezone.now()
    start, end = month_bounds(month)
    report = CloseReport(provider=provider, month=month)
    lines = list(StatementLine.objects.filter(provider=provider, occurred_at__gte=start, occurred_at__lt=end))
    report.lines = len(lines)
    report.fees = sum((line.fee_total for line in lines), ZERO)
    report.credits = sum((x.amount for x in lines if x.kind == StatementLine.Kind.CREDIT), ZERO)
    report.debits = sum((x.amount for x in lines if x.kind == StatementLine.Kind.DEBIT), ZERO)
    refs = [line.provider_reference for line in lines]
    payments = _by_reference(_refs(Payment, provider, refs))
    money_out = _by_reference([*_refs(Payout, provider, refs), *_refs(Refund, provider, refs)])
    found: dict[str, tuple[Discrepancy.Kind, dict]] = {}
    seen_ledger: set[tuple[str, int]] = set()

    for line in lines:
        if line.kind == StatementLine.Kind.FEE:
            continue
        target = (payments if line.kind == StatementLine.Kind.CREDIT else money_out).get(line.provider_reference)
        if target is None:
            report.findings.append(
                Finding(
                    "statement_only",
                    line.provider_reference,
                    statement_amount=line.amount,
                    currency=line.currency,
                    detail=f"{line.kind} not in the ledger",
                )
            )
            found[f"statement_only:{provider}:{line.line_key}"] = (
                Discrepancy.Kind.STATEMENT_ONLY,
                {
                    "line": line,
                    "actual": line.amount,
                    "detail": f"statement: {line.kind} {line.amount} {line.currency} {line.provider_reference} at "
                    f"{timezone.localtime(line.occurred_at):%Y-%m-%d %H:%M} "
                    f"({line.counterparty or 'no counterparty'}); "
                    f"ledger: nothing with this reference",
                },
            )
            continue
        seen_ledger.add((type(target).__name__, target.pk))
        differences = []
        if target.amount != line.amount:
            differences.append(f"amount {line.amount} ≠ {target.amount}")
        if target.currency != line.currency:
            differences.append(f"currency {line.currency} ≠ {target.currency}")
        if not _done(target):
            differences.append(f"our status is {target.status}")
        name = type(target).__name__.lower()
        if not differences:
            report.findings.append(
                Finding("matched", line.provider_reference, target.reference, line.amount, target.amount, line.currency)
            )
            continue
        detail = (
            f"statement: {line.kind} {line.amount} {line.currency} {line.provider_reference}; ledger: {name} "
            f"{target.reference} {target.amount} {target.currency} {target.status} ({', '.join(differences)})"
        )
        report.findings.append(
            Finding(
                "mismatched",
                line.provider_reference,
                target.reference,
                line.amount,
                target.amount,
                line.currency,
                ", ".join(differences),
            )
        )
        found[f"mismatch:{provider}:{line.line_key}"] = (
            Discrepancy.Kind.MISMATCH,
            {"line": line, name: target, "expected": target.amount, "actual": line.amount, "detail": detail},
        )

    # The ledger's side: what completed this month and no line of any import shows.
    # A pulled statement (Daraja's Pull Transactions) lists money received only: it covers payments, never
    # payouts or refunds.
    statements_of = Statement.objects.filter(provider=provider)
    covered_in = statements_of.aggregate(until=models.Max("period_end"))["until"]
    covered_out = statements_of.exclude(source="pull").aggregate(until=models.Max("period_end"))["until"]
    grace = timedelta(hours=settings.FINANCE_LEDGER_GRACE_HOURS)
    ledger: list[Payment | Payout | Refund] = [
        *Payment.objects.filter(
            provider=provider, status=Payment.Status.SUCCEEDED, completed_at__gte=start, completed_at__lt=end
        ),
        *Payout.objects.filter(provider=provider, status=Payout.DONE, completed_at__gte=start, completed_at__lt=end),
        *Refund.objects.filter(provider=provider, status=Refund.DONE, completed_at__gte=start, completed_at__lt=end),
    ]
    unseen = [obj for obj in ledger if (type(obj).__name__, obj.pk) not in seen_ledger]
    on_any_line = set(
        StatementLine.objects.filter(provider=provider)
        .filter(provider_reference__in=[r for obj in unseen for r in (obj.provider_reference, obj.receipt) if r])
        .values_list("provider_reference", flat=True)
    )
    for obj in unseen:
        if {obj.provider_reference, obj.receipt} & on_any_line:
            continue  # on a line of another month (matched there)
        name = type(obj).__name__.lower()
        completed = obj.completed_at or now
        covered = covered_in if isinstance(obj, Payment) else covered_out
        within_grace = covered is None or completed > covered - grace
        kind = "ledger_only_expected" if within_grace else "ledger_only"
        report.findings.append(
            Finding(
                kind,
                obj.receipt or obj.provider_reference or "",
                obj.reference,
                ledger_amount=obj.amount,
                currency=obj.currency,
                detail=f"{name} completed {timezone.localtime(completed):%Y-%m-%d %H:%M}",
            )
        )
        if not within_grace:
            found[f"ledger_only:{name}:{obj.pk}"] = (
                Discrepancy.Kind.LEDGER_ONLY,
                {
                    name: obj,
                    "expected": obj.amount,
                    "detail": f"ledger: {name} {obj.reference} {obj.amount} {obj.currency} (provider reference "
                    f"{obj.provider_reference or '—'}, receipt {obj.receipt or '—'}) completed "
                    f"{timezone.localtime(completed):%Y-%m-%d %H:%M}; statement: nothing up to "
                    f"{timezone.localtime(covered):%Y-%m-%d %H:%M}",
                },
            )

    statements = list(Statement.objects.filter(provider=provider, period_start__gte=start, period_start__lt=end))
    report.statements = len(statements)
    report.duplicate_lines = sum(s.duplicate_lines for s in statements)
    for statement in statements:
        proof = BalanceProof(
            statement,
            statement.opening_balance,
            statement.credits,
            statement.debits,
            statement.fees,
            statement.closing_balance,
        )
        report.proofs.append(proof)
        if proof.holds is False:
            found[f"balance:statement:{statement.pk}"] = (
                Discrepancy.Kind.BALANCE,
                {
                    "statement": statement,
                    "expected": proof.expected_closing,
                    "actual": proof.closing,
                    "detail": f"statement {statement.pk} ({statement.filename or statement.source}): {proof.text()}",
                },
            )

        held = balance_reading_check(statement)
        if held is not None:
            report.readings.append(held)
            if held.difference:
                found[f"balance_reading:statement:{statement.pk}"] = (
                    Discrepancy.Kind.BALANCE,
                    {
                        "statement": statement,
                        "expected": held.expected,
                        "actual": held.reading.available,
                        "detail": f"statement {statement.pk} against the wallet balance: {held.text()}",
                    },
                )

    _record(provider, month, found)
    recorded = Discrepancy.objects.filter(provider=provider, month=month)
    report.exceptions_open = recorded.filter(status__in=Discrepancy.OPEN_STATUSES).count()
    report.exceptions_resolved = recorded.exclude(status__in=Discrepancy.OPEN_STATUSES).count()
    return report


def _record(provider: str, month: str, found: dict[str, tuple[Discrepancy.Kind, dict]]) -> None:
    from payments.models import fit

    for key, (kind, values) in found.items():
        values = {**values, "detail": fit(Discrepancy, "detail", values["detail"])}
        if Discrepancy.objects.filter(key=key).exists():
            continue
        try:
            with transaction.atomic():
                Discrepancy.objects.create(key=key, provider=provider, kind=kind, month=month, **values)
        except IntegrityError:
            pass  # a close running at the same time recorded it first
    # An open finding this run no longer makes (the line arrived, the payment was corrected) is cleared; one a
    # person is working on (held, write-off asked) stays theirs.
    Discrepancy.objects.filter(provider=provider, month=month, status=Discrepancy.Status.OPEN).exclude(
        key__in=list(found)
    ).update(status=Discrepancy.Status.CLEARED, resolved_at=timezone.now())


CSV_COLUMNS = ("section", "reference", "our_reference", "statement_amount", "ledger_amount", "currency", "detail")


def report_csv(report: CloseReport) -> str:
    out = io.StringIO()
    writer = SafeCsvWriter(out, lineterminator="\n")  # a provider's text never runs as a spreadsheet formula
    writer.writerow(CSV_COLUMNS)
    for finding in report.findings:
        writer.writerow(
            [
                finding.kind,
                finding.reference,
                finding.our_reference,
                "" if finding.statement_amount is None else finding.statement_amount,
                "" if finding.ledger_amount is None else finding.ledger_amount,
                finding.currency,
                finding.detail,
            ]
        )
    for proof in report.proofs:
        writer.writerow(
            [
                "balance",
                f"statement {proof.statement.pk}",
                "",
                proof.closing or "",
                proof.expected_closing or "",
                proof.statement.currency,
                proof.text(),
            ]
        )
    for held in report.readings:
        writer.writerow(
            [
                "wallet_balance",
                f"statement {held.statement.pk}",
                f"reading {held.reading.pk}",
                held.reading.available,
                held.expected,
                held.reading.currency,
                held.text(),
            ]
        )
    for name, value in summary(report):
        writer.writerow(["total", name, "", value, "", "", ""])
    return out.getvalue()


def summary(report: CloseReport) -> list[tuple[str, object]]:
    counts = report.counts()
    return [
        ("statement lines", report.lines),
        ("duplicate lines skipped", report.duplicate_lines),
        ("matched", counts["matched"]),
        ("matched amount", report.matched_amount),
        ("mismatched", counts["mismatched"]),
        ("on the statement only", counts["statement_only"]),
        ("in the ledger only (within grace)", counts["ledger_only_expected"]),
        ("in the ledger only (exception)", counts["ledger_only"]),
        ("credits", report.credits),
        ("debits", report.debits),
        ("fees", report.fees),
        ("balance proofs holding", sum(1 for p in report.proofs if p.holds)),
        ("balance proofs failing", sum(1 for p in report.proofs if p.holds is False)),
        ("balance proofs without balances", sum(1 for p in report.proofs if p.holds is None)),
        ("closing balances agreeing with the wallet", sum(1 for r in report.readings if not r.difference)),
        ("closing balances differing from the wallet", sum(1 for r in report.readings if r.difference)),
        ("exceptions open", report.exceptions_open),
        ("exceptions resolved", report.exceptions_resolved),
    ]
