"""A donor's yearly statement: every ledger movement of their donations in a (local) calendar year.

Read from the ledger (donor.Allocation), not from the donations: a gift completed in December and refunded in
January is received in one year's statement and refunded in the next's, so each year's total is what the ledger
moved that year — completed minus refunded — and the statements of all years add up to the ledger.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet
from django.utils import timezone

from donor.models import Allocation, Donation, Donor
from donor.sms import money_for_people
from receipts.documents import DATE, document_pdf


@dataclass(frozen=True)
class StatementLine:
    donation: Donation
    date: str
    number: str
    received: Decimal
    refunded: Decimal
    currency: str


def year_bounds(year: int) -> tuple[datetime, datetime]:
    """The local calendar year (TIME_ZONE), as aware datetimes: [1 January, next 1 January)."""
    zone = timezone.get_current_timezone()
    return datetime(year, 1, 1, tzinfo=zone), datetime(year + 1, 1, 1, tzinfo=zone)


def statement_movements(*, donor: Donor, year: int) -> QuerySet[Allocation]:
    start, end = year_bounds(year)
    return Allocation.objects.filter(donation__donor=donor, created_at__gte=start, created_at__lt=end)


def statement_lines(*, donor: Donor, year: int) -> list[StatementLine]:
    """One line per donation that moved in the year: what was credited and what was reversed in it."""
    moved: dict[int, dict[str, Decimal]] = defaultdict(lambda: {"credit": Decimal("0"), "reversal": Decimal("0")})
    first_at: dict[int, datetime] = {}
    for row in statement_movements(donor=donor, year=year).order_by("created_at", "pk"):
        moved[row.donation_id][row.entry] += row.amount
        first_at.setdefault(row.donation_id, row.created_at)
    donations = Donation.objects.select_related("patient").prefetch_related("receipts").in_bulk(list(moved))
    lines = []
    for donation_id, sums in moved.items():
        donation = donations[donation_id]
        receipt = max(donation.receipts.all(), key=lambda r: r.version, default=None)
        lines.append(
            StatementLine(
                donation=donation,
                date=timezone.localtime(first_at[donation_id]).strftime(DATE),
                number=receipt.number if receipt else "",
                received=sums["credit"],
                refunded=-sums["reversal"],
                currency=donation.currency,
            )
        )
    return lines


def statement_totals(*, lines: list[StatementLine]) -> dict[str, Decimal]:
    """Received minus refunded, per currency."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for line in lines:
        totals[line.currency] += line.received - line.refunded
    return dict(sorted(totals.items()))


def statement_pdf(*, donor: Donor, year: int) -> bytes:
    lines = statement_lines(donor=donor, year=year)
    context = {
        "year": year,
        "donor_name": donor.name or donor.email,
        "lines": [
            {
                "donation": line.donation,
                "date": line.date,
                "number": line.number,
                "received": money_for_people(line.received, line.currency) if line.received else "",
                "refunded": money_for_people(line.refunded, line.currency) if line.refunded else "",
            }
            for line in lines
        ],
        "totals": [
            {"currency": currency, "text": money_for_people(total, currency)}
            for currency, total in statement_totals(lines=lines).items()
        ],
    }
    return document_pdf(template="receipts/statement.html", context=context, language=donor.language)[1]


def statement_years(*, donor: Donor) -> list[int]:
    """The (local) years the ledger moved money of this donor's donations in, newest first."""
    moments = Allocation.objects.filter(donation__donor=donor).values_list("created_at", flat=True)
    return sorted({timezone.localtime(moment).year for moment in moments}, reverse=True)
