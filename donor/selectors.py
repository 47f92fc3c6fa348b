from decimal import Decimal

from django.db.models import DecimalField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from donor.models import Allocation, Donation, Donor
from donor.services import LedgerDrift
from patients.models import Patient

CENTS = Decimal("0.01")


def ledger_drift() -> list[LedgerDrift]:
    """Every patient whose cached funding_received differs from Sum(Allocation.amount)."""
    ledger_sum = (
        Allocation.objects.filter(patient=OuterRef("pk"))
        .values("patient")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    money = DecimalField(max_digits=14, decimal_places=2)
    patients = Patient.objects.annotate(
        ledger=Coalesce(Subquery(ledger_sum, output_field=money), Value(Decimal("0")), output_field=money)
    ).order_by("code")
    return [
        LedgerDrift(patient=p, cached=p.funding_received, ledger=Decimal(p.ledger).quantize(CENTS))
        for p in patients
        if p.funding_received != p.ledger
    ]


def general_fund_totals() -> dict[str, Decimal]:
    rows = Allocation.objects.filter(target=Allocation.GENERAL_FUND).values("currency").annotate(total=Sum("amount"))
    return {row["currency"]: row["total"] for row in rows}


def donation_get(*, reference: str) -> Donation | None:
    return Donation.objects.select_related("patient", "donor").filter(reference__iexact=reference.strip()).first()


def donation_list_for_donor(*, donor: Donor) -> QuerySet[Donation]:
    return Donation.objects.filter(donor=donor).select_related("patient").order_by("-created_at", "-id")


def donation_recent_public(*, patient: Patient, limit: int = 10) -> QuerySet[Donation]:
    return (
        Donation.objects.filter(patient=patient, status=Donation.Status.COMPLETED)
        .select_related("donor")
        .order_by("-completed_at")[:limit]
    )
