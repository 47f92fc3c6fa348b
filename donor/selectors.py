"""Reads of donations and the ledger for the portal and the API, with who may read which donation: its owner,
staff, or the browser that made it (by the session key below). No writes here."""

import hmac
from collections.abc import Container
from decimal import Decimal

from django.db.models import DecimalField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from donor.ledger import LedgerDrift
from donor.models import Allocation, Donation, Donor
from patients.models import Patient

CENTS = Decimal("0.01")
# The portal's session: reference → what this browser typed for it (portal/web.py). A reference in it is a
# donation this browser made, which it may read by reference.
DONATION_SESSION_KEY = "donation_details"


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


def donation_for_reader(
    *, handle: str, user: object = None, session_references: Container[str] = ()
) -> Donation | None:
    """The donation a status handle opens for this reader, or None (answered as "no such donation", so a
    refusal and an unknown handle look the same).

    The public token opens it for anyone (its link is the donor's). The sequential reference is guessable, so
    it opens the donation only for its donor — the account it belongs to, signed in (JWT or session), or the
    browser that made it (its session remembers the reference) — and for staff who may view donations."""
    handle = (handle or "").strip()
    if not handle:
        return None
    by_token = Donation.objects.select_related("patient", "donor").filter(public_token=handle).first()
    # Compared again here, exactly: MySQL's default collation would match the token ignoring case.
    if by_token is not None and hmac.compare_digest(by_token.public_token.encode(), handle.encode()):
        return by_token
    donation = donation_get(reference=handle)
    if donation is None:
        return None
    if donation.reference in session_references or _owner_or_staff(donation, user):
        return donation
    return None


def _owner_or_staff(donation: Donation, user: object) -> bool:
    if user is None or not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return False
    if donation.donor is not None and donation.donor.user_id == getattr(user, "pk", None):
        return True
    return bool(getattr(user, "is_staff", False) and user.has_perm("donor.view_donation"))  # type: ignore[attr-defined]


def donation_list_for_donor(*, donor: Donor) -> QuerySet[Donation]:
    return Donation.objects.filter(donor=donor).select_related("patient").order_by("-created_at", "-id")


def donation_recent_public(*, patient: Patient, limit: int = 10) -> QuerySet[Donation]:
    return (
        Donation.objects.filter(patient=patient, status=Donation.Status.COMPLETED)
        .select_related("donor")
        .order_by("-completed_at")[:limit]
    )
