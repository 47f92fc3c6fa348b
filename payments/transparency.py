"""Where a patient's money went, for donors (the patient page, the share page and the patient API): received,
refunded, paid to the treatment partner, held, and still needed.

Every figure is read from the same rows `verify_ledger` proves (payments/services/ledger_check.py): the
allocation ledger (credits and reversing rows) and the payouts marked paid. So `net_received` is the patient's
Sum(allocations) — what verify_ledger holds `funding_received` to — and `paid_out` is the sum it holds below it.
No donor is named here: counts and totals only. Also the paybill a donor can pay without the site.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Q, Sum

from donor.models import Allocation
from patients.models import Patient
from payments.models import Payout
from payments.providers.base.capabilities import Paybill
from payments.providers.base.errors import ProviderSettingsInvalid
from payments.providers.registry import MissingCapability, UnknownProvider, get_capable, provider_codes

ZERO = Decimal("0")


@dataclass(frozen=True)
class PaidOut:
    """One payout to the treatment partner: when, how much, and the provider's receipt for it."""

    paid_at: datetime | None
    amount: Decimal
    currency: str
    receipt: str


@dataclass(frozen=True)
class MoneyTrail:
    currency: str
    goal: Decimal
    received_count: int  # donations credited to the patient
    received: Decimal  # what they credited
    refunded_count: int  # of them, donations (partly) given back
    refunded: Decimal  # what went back, as a positive amount
    net_received: Decimal  # received − refunded: the ledger's total for the patient
    paid_out: Decimal  # paid to the treatment partner
    payouts: list[PaidOut]
    held: Decimal  # received and not paid out yet
    still_needed: Decimal  # goal − net_received, never below zero


def patient_money_trail(*, patient: Patient) -> MoneyTrail:
    rows = Allocation.objects.filter(patient=patient).aggregate(
        credits=Sum("amount", filter=Q(entry=Allocation.Entry.CREDIT)),
        credit_count=Count("donation", filter=Q(entry=Allocation.Entry.CREDIT), distinct=True),
        reversals=Sum("amount", filter=Q(entry=Allocation.Entry.REVERSAL)),
        reversal_count=Count("donation", filter=Q(entry=Allocation.Entry.REVERSAL), distinct=True),
    )
    received, refunded = rows["credits"] or ZERO, -(rows["reversals"] or ZERO)
    paid = Payout.objects.filter(patient=patient, status=Payout.Status.PAID).order_by("completed_at", "pk")
    payouts = [PaidOut(p.completed_at, p.amount, p.currency, p.receipt) for p in paid]
    paid_out = sum((p.amount for p in payouts), ZERO)
    net = received - refunded
    return MoneyTrail(
        currency=patient.currency,
        goal=patient.funding_goal,
        received_count=rows["credit_count"],
        received=received,
        refunded_count=rows["reversal_count"],
        refunded=refunded,
        net_received=net,
        paid_out=paid_out,
        payouts=payouts,
        held=net - paid_out,
        still_needed=max(ZERO, patient.funding_goal - net),
    )


@dataclass(frozen=True)
class PaybillWay:
    """Paying without the site: on the rail's own menu, to this paybill, with the patient's code as account."""

    rail: str  # "M-Pesa"
    paybill: str  # the configured paybill shortcode (MPESA_C2B_SHORTCODE)
    account: str


def paybill_ways(*, patient: Patient) -> list[PaybillWay]:
    """The rails this site runs that take paybill payments in the patient's currency (M-Pesa's C2B for KES)."""
    ways = []
    for code in (code for code in provider_codes() if code in settings.PAYMENT_RAILS):
        try:
            rail = get_capable(code, Paybill)
        except (MissingCapability, UnknownProvider, ProviderSettingsInvalid):
            continue
        if rail.paybill_currency == patient.currency and rail.paybill_shortcode:
            name = getattr(rail, "display_name", code)
            ways.append(PaybillWay(rail=name, paybill=rail.paybill_shortcode, account=patient.code))
    return ways
