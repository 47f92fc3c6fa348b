"""`verify_ledger`'s proof of the whole book, not only each patient's cached total.

- every patient's `funding_received` equals the sum of its allocations (donor.selectors.ledger_drift);
- every completed (or refunded) donation has credits equal to its amount, and no other donation has rows;
- every donation's reversal rows equal what its refunded refunds gave back (so no refund is `refunded`
  without its reversal, and no reversal exists without a refund);
- what was paid out to a patient's treatment partner never exceeds what the patient received.

Each run is kept (`LedgerCheck`) so the admin's dashboard can show the last one.
"""

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q, QuerySet, Sum

from donor.models import Allocation, Donation
from donor.selectors import LedgerDrift, ledger_drift
from patients.models import Patient
from payments.models import LedgerCheck, Payout, Refund

ZERO = Decimal("0")
BOOKED = (Donation.Status.COMPLETED, Donation.Status.REFUNDED)


@dataclass(frozen=True)
class BookCheck:
    drifts: list[LedgerDrift]  # patients whose cached total is off (verify_ledger --repair fixes these)
    problems: list[str]  # one line per item that is wrong in the book itself (a person must look)

    @property
    def ok(self) -> bool:
        return not (self.drifts or self.problems)


def _sums(rows: QuerySet, key: str) -> dict[int, Decimal]:
    return {row[key]: row["total"] for row in rows.values(key).annotate(total=Sum("amount")).order_by()}


def book_check() -> BookCheck:
    credits = _sums(Allocation.objects.filter(entry=Allocation.Entry.CREDIT), "donation")
    reversals = _sums(Allocation.objects.filter(entry=Allocation.Entry.REVERSAL), "donation")
    refunded = _sums(Refund.objects.filter(status=Refund.Status.REFUNDED), "donation")
    touched = Q(pk__in=[*credits, *reversals, *refunded]) | Q(status__in=BOOKED)
    problems = []
    for donation in Donation.objects.filter(touched).order_by("pk").only("reference", "status", "amount", "currency"):
        credit, back = credits.get(donation.pk, ZERO), -reversals.get(donation.pk, ZERO)
        given_back, money = refunded.get(donation.pk, ZERO), f"{donation.currency}"
        where = f"{donation.reference} ({donation.status})"
        if donation.status in BOOKED and credit != donation.amount:
            problems.append(f"{where}: credits of {credit} {money} for a donation of {donation.amount}")
        elif donation.status not in BOOKED and (credit or back):
            problems.append(f"{where}: credits of {credit} and reversals of {back} {money} on an unpaid donation")
        if back != given_back:
            problems.append(f"{where}: reversals of {back} {money} but refunds of {given_back} refunded")
    paid_out: dict[int, Decimal] = defaultdict(lambda: ZERO, _sums(Payout.objects.filter(status=Payout.Status.PAID),
                                                                   "patient"))  # fmt: skip
    received = _sums(Allocation.objects.filter(patient__isnull=False), "patient")
    for patient in Patient.objects.filter(pk__in=list(paid_out)).order_by("code"):
        if paid_out[patient.pk] > received.get(patient.pk, ZERO):
            problems.append(f"{patient.code}: paid out {paid_out[patient.pk]} {patient.currency}, more than the "
                            f"{received.get(patient.pk, ZERO)} received")  # fmt: skip
    return BookCheck(drifts=ledger_drift(), problems=problems)


def book_check_record(check: BookCheck) -> LedgerCheck:
    lines = [f"{d.patient.code}: funding_received {d.cached} != ledger {d.ledger}" for d in check.drifts]
    return LedgerCheck.objects.create(
        ok=check.ok, problems=len(check.drifts) + len(check.problems), report="\n".join(lines + check.problems)
    )
