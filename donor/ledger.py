"""The funding ledger's repairs and seeds: a patient's cached total rewritten from the allocations, and money
raised before the portal recorded as one offline donation. Kept beside the donation services, which write the
ledger; `verify_ledger` and the demo seeding are their callers."""

import logging
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Sum

from donor.models import Allocation, Donation, Donor
from donor.services import donation_complete
from patients.models import Patient
from patients.services import patient_lock, patient_set_funding_received

logger = logging.getLogger("payments.ledger")


@dataclass(frozen=True)
class LedgerDrift:
    patient: Patient
    cached: Decimal
    ledger: Decimal

    @property
    def difference(self) -> Decimal:
        return self.cached - self.ledger


def ledger_repair(*, drift: LedgerDrift) -> Decimal:
    """Rewrite a patient's cached total from the ledger, recomputed under the patient's lock.

    The drift was measured without a lock; a donation completing meanwhile adds an allocation and the cache
    together (under the same lock), so the sum must be taken again while we hold it. Returns the new total.
    """
    with transaction.atomic():
        patient = patient_lock(patient_id=drift.patient.pk)
        ledger = Allocation.objects.filter(patient_id=patient.pk).aggregate(total=Sum("amount"))["total"]
        ledger = ledger if ledger is not None else Decimal("0")
        if patient.funding_received == ledger:
            return ledger  # nothing to repair any more
        patient_set_funding_received(patient=patient, amount=ledger)
    logger.warning(
        "Ledger repaired for %s: %s -> %s %s", patient.code, patient.funding_received, ledger, patient.currency
    )
    return ledger


def ledger_seed_opening_balance(*, patient: Patient, amount: Decimal) -> Donation:
    """Demo and migration aid: money raised before this system, recorded as a completed offline donation."""
    donor = Donor.objects.create(name="Offline donations")
    with transaction.atomic():
        donation = Donation.objects.create(
            reference=f"{settings.DONATION_REFERENCE_PREFIX}-OPEN-{patient.code}",
            donor=donor,
            patient=patient,
            amount=amount,
            currency=patient.currency,
            anonymous=True,
            message="Raised before the portal opened",
        )
    donation_complete(donation_id=donation.pk)
    return donation
