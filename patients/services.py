"""Writes to patients. This app imports nothing of donor or payments (the one-way rule)."""

import logging
from collections.abc import Iterable
from decimal import Decimal

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from patients.models import Patient

logger = logging.getLogger("payments.ledger")


def patient_lock(*, patient_id: int) -> Patient:
    """Lock the patient row for the rest of the caller's transaction (the ledger's first line of defence)."""
    return Patient.objects.select_for_update().get(pk=patient_id)


def patients_lock(*, patient_ids: Iterable[int]) -> dict[int, Patient]:
    """Lock many patient rows for the caller's transaction, in primary-key order (two batches that share patients
    then queue on the first shared row instead of deadlocking)."""
    return {p.pk: p for p in Patient.objects.select_for_update().filter(pk__in=set(patient_ids)).order_by("pk")}


def patient_add_funds(*, patient: Patient, amount: Decimal) -> Patient:
    """Add money to the cached total and move to fully_funded once the goal is reached.

    The caller holds the row lock (patient_lock) inside transaction.atomic().
    """
    assert transaction.get_connection().in_atomic_block, "patient_add_funds needs the caller's transaction"
    Patient.objects.filter(pk=patient.pk).update(funding_received=F("funding_received") + amount)
    # The row is locked and was read under the lock, so the new total is known without reading it back.
    patient.funding_received += amount
    if patient.status == Patient.Status.FUNDING and patient.funding_received >= patient.funding_goal:
        patient.status = Patient.Status.FULLY_FUNDED
        patient.fully_funded_at = timezone.now()
        patient.save(update_fields=["status", "fully_funded_at", "updated_at"])
        logger.info("Patient %s is fully funded (%s %s)", patient.code, patient.funding_received, patient.currency)
    return patient


def patient_set_funding_received(*, patient: Patient, amount: Decimal) -> None:
    """Used only by the ledger repair: overwrite the cache with the ledger's truth."""
    Patient.objects.filter(pk=patient.pk).update(funding_received=amount)


def patient_remove_funds(*, patient: Patient, amount: Decimal) -> Patient:
    """Take a refunded amount off the cached total; a fully funded patient below the goal again goes back
    to raising funds. The caller holds the row lock (patient_lock) inside transaction.atomic()."""
    assert transaction.get_connection().in_atomic_block, "patient_remove_funds needs the caller's transaction"
    Patient.objects.filter(pk=patient.pk).update(funding_received=F("funding_received") - amount)
    patient.funding_received -= amount
    if patient.status == Patient.Status.FULLY_FUNDED and patient.funding_received < patient.funding_goal:
        patient.status = Patient.Status.FUNDING
        patient.fully_funded_at = None
        patient.save(update_fields=["status", "fully_funded_at", "updated_at"])
        logger.info("Patient %s is raising funds again after a refund", patient.code)
    return patient
