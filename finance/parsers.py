"""Provider statement exports turned into lines (pure: bytes in, ParsedStatement out, no database).

Each provider's export has its own parser (PARSERS); a rail whose export columns are not documented takes the
generic CSV (docs/providers/README.md "Statement exports"), to which any export can be mapped by hand. Every
problem is collected with its line number and the whole file refused, so nothing of a bad file is imported.
"""

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.utils import timezone

KINDS = ("credit", "debit", "fee")
GENERIC_COLUMNS = ("occurred_at", "provider_reference", "kind", "amount", "fee", "currency", "account", "counterparty")
META_KEYS = ("opening_balance", "closing_balance", "period_start", "period_end", "currency")
MAX_AMOUNT = Decimal("9999999999.99")  # MONEY: 12 digits, 2 places


@dataclass(frozen=True)
class Line:
    number: int  # the file's line number (1 = the first line of the file)
    occurred_at: datetime
    provider_reference: str
    kind: str
    amount: Decimal
    fee: Decimal
    currency: str
    account: str = ""
    counterparty: str = ""
    status: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.provider_reference}"

    @property
    def fee_total(self) -> Decimal:
        return self.fee + (self.amount if self.kind == "fee" else Decimal("0"))

    def same_as(self, other: "Line") -> bool:
        """Whether two lines with one key say the same thing (a repeated line, not a conflict)."""
        fields = ("occurred_at", "kind", "amount", "fee", "currency")
        return all(getattr(self, f) == getattr(other, f) for f in fields)


@dataclass
class ParsedStatement:
    lines: list[Line] = field(default_factory=list)
    opening_balance: Decimal | None = None
    closing_balance: Decimal | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    currency: str = ""
    skipped: list[tuple[int, str]] = field(default_factory=list)  # lines left out on purpose, with why


class StatementInvalid(ValueError):
    """The file cannot be imported; `problems` are (line number, what is wrong), line 0 for the whole file."""

    def __init__(self, problems: list[tuple[int, str]]):
        self.problems = problems
        super().__init__("; ".join(f"line {n}: {text}" if n else text for n, text in problems[:20]))


def money(text: str, *, what: str, allow_negative: bool = False) -> Decimal:
    cleaned = (text or "").strip().replace(",", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"{what} {text!r} is not an amount") from None
    if not value.is_finite():
        raise ValueError(f"{what} {text!r} is not an amount")
    if value != value.quantize(Decimal("0.01")):
        raise ValueError(f"{what} {text!r} has more than 2 decimal places")
    if abs(value) > MAX_AMOUNT:
        raise ValueError(f"{what} {text!r} is too large")
    if value < 0 and not allow_negative:
        raise ValueError(f"{what} {text!r} is negative")
    return value.quantize(Decimal("0.01"))


def moment(text: str, *, what: str = "occurred_at") -> datetime:
    """ISO 8601 (or `YYYY-MM-DD HH:MM:SS`); a time without an offset is in TIME_ZONE."""
    try:
        value = datetime.fromisoformat((text or "").strip())
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a date and time (use 2026-11-03T14:05:00+03:00)") from None
    return value if timezone.is_aware(value) else timezone.make_aware(value)


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise StatementInvalid([(0, f"the file is not UTF-8 text (byte {exc.start}); export it as CSV")]) from None


def _rows(raw: bytes) -> tuple[dict[str, str], list[tuple[int, dict[str, str]]], list[str]]:
    """`# key: value` lines before the header, then the CSV rows with their file line numbers."""
    text = _text(raw)
    if "\x00" in text:
        raise StatementInvalid([(0, "the file is not a CSV export (it holds binary data)")])
    meta: dict[str, str] = {}
    lines = text.splitlines(keepends=True)
    start = 0
    while start < len(lines) and (lines[start].startswith("#") or not lines[start].strip()):
        key, _, value = lines[start].lstrip("#").partition(":")
        if key.strip():
            meta[key.strip().lower()] = value.strip()
        start += 1
    reader = csv.DictReader(io.StringIO("".join(lines[start:])))
    header = [name.strip() for name in (reader.fieldnames or [])]
    rows = []
    try:
        for row in reader:
            number = start + reader.line_num
            if None in row:
                rows.append((number, {"__extra__": "1"}))
                continue
            if not any((value or "").strip() for value in row.values()):
                continue
            rows.append((number, {(k or "").strip(): (v or "").strip() for k, v in row.items()}))
    except csv.Error as exc:
        raise StatementInvalid([(start + reader.line_num, f"not readable as CSV ({exc})")]) from None
    return meta, rows, header


def _apply_meta(meta: dict[str, str], parsed: ParsedStatement, problems: list[tuple[int, str]]) -> None:
    for key in ("opening_balance", "closing_balance"):
        if meta.get(key):
            try:
                setattr(parsed, key, money(meta[key], what=key, allow_negative=True))
            except ValueError as exc:
                problems.append((0, str(exc)))
    for key in ("period_start", "period_end"):
        if meta.get(key):
            try:
                setattr(parsed, key, moment(meta[key], what=key))
            except ValueError as exc:
                problems.append((0, str(exc)))
    if meta.get("currency"):
        parsed.currency = meta["currency"].upper()


def parse_generic(raw: bytes) -> ParsedStatement:
    """The generic CSV: the header names GENERIC_COLUMNS (any order; `status` optional); optional `# key:
    value` lines before it give opening_balance, closing_balance, period_start, period_end, currency."""
    meta, rows, header = _rows(raw)
    missing = [name for name in GENERIC_COLUMNS if name not in header]
    if missing:
        raise StatementInvalid(
            [
                (
                    0,
                    f"the header lacks the column(s) {', '.join(missing)} (the generic CSV has "
                    f"{', '.join(GENERIC_COLUMNS)})",
                )
            ]
        )
    parsed = ParsedStatement()
    problems: list[tuple[int, str]] = []
    _apply_meta(meta, parsed, problems)
    for number, row in rows:
        if "__extra__" in row:
            problems.append((number, "more values than the header has columns"))
            continue
        try:
            kind = row["kind"].lower()
            if kind not in KINDS:
                raise ValueError(f"kind {row['kind']!r} is not one of credit, debit, fee")
            reference = row["provider_reference"]
            if not reference or len(reference) > 100:
                raise ValueError("provider_reference is empty or longer than 100 characters")
            currency = row["currency"].upper()
            if len(currency) != 3 or not currency.isalpha():
                raise ValueError(f"currency {row['currency']!r} is not a 3-letter code")
            amount = money(row["amount"], what="amount")
            if amount == 0:
                raise ValueError("amount is 0")
            parsed.lines.append(
                Line(
                    number=number,
                    occurred_at=moment(row["occurred_at"]),
                    provider_reference=reference,
                    kind=kind,
                    amount=amount,
                    fee=money(row["fee"], what="fee") if row["fee"] else Decimal("0.00"),
                    currency=currency,
                    account=row["account"][:100],
                    counterparty=row["counterparty"][:128],
                    status=row.get("status", "")[:40],
                )
            )
        except ValueError as exc:
            problems.append((number, str(exc)))
    return _finish(parsed, problems)


# The M-Pesa organisation portal's statement export. Safaricom publishes no column list for it; these are the
# columns the export is known to carry (docs/providers/mpesa.md "Statement export", unconfirmed by Safaricom).
MPESA_REQUIRED = ("Receipt No.", "Completion Time", "Details", "Transaction Status", "Paid In", "Withdrawn", "Balance")


def parse_mpesa_org(raw: bytes) -> ParsedStatement:
    """An M-Pesa organisation statement (CSV from the org portal), or the generic CSV when its header is that.

    Paid In is a credit, Withdrawn a debit (shown with or without a minus), a row whose Details or Reason Type
    names a charge is a fee; rows not `Completed` are skipped (nothing moved). The running Balance gives the
    opening (before the first row) and closing (after the last) balances."""
    meta, rows, header = _rows(raw)
    if "provider_reference" in header:
        return parse_generic(raw)
    aliases = {"Receipt No": "Receipt No.", "A/C No": "A/C No."}
    header = [aliases.get(name, name) for name in header]
    missing = [name for name in MPESA_REQUIRED if name not in header]
    if missing:
        raise StatementInvalid([(0, f"not an M-Pesa organisation statement: no column(s) {', '.join(missing)}")])
    parsed = ParsedStatement(currency=(meta.get("currency") or "KES").upper())
    problems: list[tuple[int, str]] = []
    _apply_meta(meta, parsed, problems)
    balances: list[tuple[datetime, int, Decimal, Decimal]] = []
    for number, row in rows:
        if "__extra__" in row:
            problems.append((number, "more values than the header has columns"))
            continue
        row = {aliases.get(k, k): v for k, v in row.items()}
        try:
            reference = row["Receipt No."]
            if not reference or len(reference) > 100:
                raise ValueError("Receipt No. is empty or longer than 100 characters")
            occurred = moment(row["Completion Time"], what="Completion Time")
            paid_in = money(row["Paid In"], what="Paid In") if row["Paid In"] else Decimal("0")
            withdrawn = (
                abs(money(row["Withdrawn"], what="Withdrawn", allow_negative=True))
                if row["Withdrawn"]
                else Decimal("0")
            )
            balance = money(row["Balance"], what="Balance", allow_negative=True) if row["Balance"] else None
            if bool(paid_in) == bool(withdrawn):
                raise ValueError("exactly one of Paid In and Withdrawn must hold an amount")
            status = row["Transaction Status"]
            if status.lower() != "completed":
                parsed.skipped.append((number, f"status {status!r}: nothing moved"))
                continue
            charge = "charge" in f"{row['Details']} {row.get('Reason Type', '')}".lower()
            kind = "credit" if paid_in else ("fee" if charge else "debit")
            parsed.lines.append(
                Line(
                    number=number,
                    occurred_at=occurred,
                    provider_reference=reference,
                    kind=kind,
                    amount=paid_in or withdrawn,
                    fee=Decimal("0.00"),
                    currency=parsed.currency,
                    account=row.get("A/C No.", "")[:100],
                    counterparty=row.get("Other Party Info", "")[:128],
                    status=status[:40],
                )
            )
            if balance is not None:
                balances.append((occurred, number, balance, paid_in - withdrawn))
        except ValueError as exc:
            problems.append((number, str(exc)))
    if balances and not problems:
        balances.sort(key=lambda b: (b[0], b[1]))
        first, last = balances[0], balances[-1]
        if parsed.opening_balance is None:
            parsed.opening_balance = first[2] - first[3]
        if parsed.closing_balance is None:
            parsed.closing_balance = last[2]
    return _finish(parsed, problems)


def _finish(parsed: ParsedStatement, problems: list[tuple[int, str]]) -> ParsedStatement:
    if not parsed.lines and not problems:
        problems.append((0, "the file holds no statement lines"))
    currencies = {line.currency for line in parsed.lines}
    if len(currencies) > 1:
        problems.append((0, f"one statement, one currency: this file has {', '.join(sorted(currencies))}"))
    if problems:
        raise StatementInvalid(problems)
    parsed.currency = parsed.currency or parsed.lines[0].currency
    if parsed.currency not in currencies:
        raise StatementInvalid([(0, f"the lines are in {currencies.pop()}, the file says {parsed.currency}")])
    times = [line.occurred_at for line in parsed.lines]
    parsed.period_start = parsed.period_start or min(times)
    parsed.period_end = parsed.period_end or max(times)
    if any(t < parsed.period_start or t > parsed.period_end for t in times):
        raise StatementInvalid([(0, "a line lies outside the file's period_start..period_end")])
    return parsed


# One parser per provider export. MTN, Airtel and AzamPay publish no statement column list we could build on
# (docs/providers/<code>.md "Statement export"): their portal exports are mapped to the generic CSV.
PARSERS: dict[str, Callable[[bytes], ParsedStatement]] = {
    "mpesa": parse_mpesa_org,
    "mtn": parse_generic,
    "airtel": parse_generic,
    "azampay": parse_generic,
}
