"""The ledger the fixture statement is held against, built as our side recorded it (not read from the file)."""

from datetime import datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from donor.tests.factories import DonationFactory
from patients.tests.factories import PatientFactory
from payments.models import Payment, Payout
from payments.tests.factories import staff_user

START = timezone.make_aware(datetime(2026, 11, 1, 8, 0))
DONATIONS = 94
MISMATCHED = "TKA0000017"  # the statement says 100 more than we credited
LEDGER_ONLY = "TKL0000001"  # credited by us, on no statement


def donation_amount(n: int) -> Decimal:
    return Decimal(100 + n * 10)


def build_ledger() -> dict[str, object]:
    donation = DonationFactory(amount=Decimal("100"), currency="KES")
    payments = [
        Payment(
            donation=donation,
            reference=f"RHCI-DN-{n}",
            provider="mpesa",
            amount=donation_amount(n),
            currency="KES",
            status=Payment.Status.SUCCEEDED,
            provider_reference=f"ws_CO_{n:06d}",
            receipt=f"TKA{n:07d}",
            completed_at=START + timedelta(hours=7 * n, seconds=-20),
        )
        for n in range(1, DONATIONS + 1)
    ]
    payments.append(
        Payment(
            donation=donation,
            reference="RHCI-DN-LEDGER-ONLY",
            provider="mpesa",
            amount=Decimal("640.00"),
            currency="KES",
            status=Payment.Status.SUCCEEDED,
            provider_reference="ws_CO_999999",
            receipt=LEDGER_ONLY,
            completed_at=START + timedelta(days=9),
        )
    )
    Payment.objects.bulk_create(payments)
    patient = PatientFactory(currency="KES")
    maker = staff_user("payout-maker")
    for ref, amount, day in (("TKB0000001", "3000.00", 12), ("TKB0000002", "2500.00", 20)):
        Payout.objects.create(
            reference=f"RHCI-PO-{ref}",
            provider="mpesa",
            amount=Decimal(amount),
            currency="KES",
            status=Payout.Status.PAID,
            patient=patient,
            treatment_partner=patient.treatment_partner,
            msisdn="254700000901",
            requested_by=maker,
            provider_reference=f"AG_{ref}",
            receipt=ref,
            completed_at=timezone.make_aware(datetime(2026, 11, day, 10, 0)),
        )
    return {"donation": donation, "patient": patient}
