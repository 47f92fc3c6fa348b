"""Concurrent AzamPay callbacks against a real MariaDB/MySQL server: one credit per payment, always.

Skipped on SQLite (conftest); CI runs them on MariaDB. Each thread has its own test Client and its own
database connection, closed when the thread ends.
"""

import json
from decimal import Decimal

import pytest

from donor.models import Allocation, Donation
from donor.tests.factories import DonationFactory
from patients.tests.factories import PatientFactory
from payments.models import CallbackEvent, Payment
from payments.tests.azampay_fakes import ACK, CALLBACK_URL, callback_body
from payments.tests.factories import PaymentFactory
from payments.tests.helpers import poster, run_together

pytestmark = [pytest.mark.mysql, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("azampay_settings")]

THREADS = 20


def post_callback(body: bytes):
    return poster(CALLBACK_URL, body)


def test_the_same_callback_delivered_twenty_times_at_once_credits_once():
    payment = PaymentFactory(donation__patient__funding_goal=Decimal("1000000"))
    answers = run_together([post_callback(callback_body(payment))] * THREADS)

    assert answers == [(200, ACK)] * THREADS
    patient = payment.donation.patient
    patient.refresh_from_db()
    assert patient.funding_received == payment.amount
    assert Allocation.objects.filter(donation=payment.donation).count() == 1
    assert Allocation.objects.count() == 1
    assert CallbackEvent.objects.count() == THREADS
    # Copies that arrive while the first is still being handled are handled too (under the payment's row
    # lock) and find it done; later copies are plain duplicates. Either way: one credit.
    repeats = CallbackEvent.objects.filter(status__in=[CallbackEvent.Status.DUPLICATE, CallbackEvent.Status.IGNORED])
    assert repeats.count() == THREADS - 1
    assert CallbackEvent.objects.filter(status=CallbackEvent.Status.PROCESSED).count() == 1
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED


def test_twenty_differently_encoded_copies_of_one_callback_at_once_credit_once():
    """Bytes differ, so the inbox's dedup key cannot help: the payment row lock must."""
    payment = PaymentFactory(donation__patient__funding_goal=Decimal("1000000"))
    data = json.loads(callback_body(payment))
    copies = [json.dumps(data, indent=i).encode() for i in range(THREADS)]
    answers = run_together([post_callback(copy) for copy in copies])

    assert answers == [(200, ACK)] * THREADS
    patient = payment.donation.patient
    patient.refresh_from_db()
    assert patient.funding_received == payment.amount
    assert Allocation.objects.count() == 1
    assert CallbackEvent.objects.filter(status=CallbackEvent.Status.PROCESSED).count() == 1
    assert CallbackEvent.objects.filter(status=CallbackEvent.Status.IGNORED).count() == THREADS - 1


def test_twenty_donations_to_one_patient_completing_at_once_all_land():
    patient = PatientFactory(funding_goal=Decimal("10000000"))
    payments = [
        PaymentFactory(donation=DonationFactory(patient=patient, amount=Decimal(1000 + i))) for i in range(THREADS)
    ]
    answers = run_together([post_callback(callback_body(p)) for p in payments])

    assert answers == [(200, ACK)] * THREADS
    patient.refresh_from_db()
    assert patient.funding_received == sum(p.amount for p in payments)
    assert Allocation.objects.filter(patient=patient).count() == THREADS
    assert Donation.objects.filter(status=Donation.Status.COMPLETED).count() == THREADS
    assert CallbackEvent.objects.filter(status=CallbackEvent.Status.PROCESSED).count() == THREADS
