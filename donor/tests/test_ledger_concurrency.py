"""Concurrent completions against a real MariaDB/MySQL server (skipped on SQLite, run in CI)."""

import threading
from decimal import Decimal

import pytest
from django.db import connection

from donor.models import Allocation
from donor.services import donation_complete, donation_create
from patients.tests.factories import PatientFactory

pytestmark = [pytest.mark.mysql, pytest.mark.django_db(transaction=True)]
THREADS = 20


def _run_together(targets):
    barrier = threading.Barrier(len(targets))
    errors: list[BaseException] = []
    results = []

    def worker(fn):
        try:
            barrier.wait()
            results.append(fn())
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return results


def test_twenty_donations_completing_at_once_all_land():
    patient = PatientFactory(funding_goal=Decimal("10000000"))
    donations = [donation_create(patient=patient, amount=1000 + i, currency="TZS") for i in range(THREADS)]
    _run_together([lambda d=d: donation_complete(donation_id=d.pk) for d in donations])
    patient.refresh_from_db()
    assert patient.funding_received == sum(d.amount for d in donations)
    assert Allocation.objects.filter(patient=patient).count() == THREADS


def test_the_same_donation_completed_by_twenty_threads_is_credited_once():
    patient = PatientFactory(funding_goal=Decimal("10000000"))
    donation = donation_create(patient=patient, amount="5000", currency="TZS")
    results = _run_together([lambda: donation_complete(donation_id=donation.pk)] * THREADS)
    patient.refresh_from_db()
    assert sum(r.credited for r in results) == 1
    assert patient.funding_received == Decimal("5000")
    assert Allocation.objects.filter(donation=donation).count() == 1
