"""Concurrent AzamPay callbacks against a real MariaDB/MySQL server: one credit per payment, always.

Skipped on SQLite (conftest); CI runs them on MariaDB. Each thread has its own test Client and its own
database connection, closed when the thread ends.
"""

import json
from decimal import Decimal

import pytest
from django.db import OperationalError
from django.test import Client

from donor.models import Allocation, Donation
from donor.tests.factories import DonationFactory
from patients.tests.factories import PatientFactory
from payments.models import CallbackEvent, Payment
from payments.services import callbacks
from payments.services.dispatch import callback_replay
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


def test_a_credit_whose_verdict_cannot_be_written_is_undone_then_credited_once_by_the_retry(monkeypatch):
    """The credit and the inbox row's `processed` commit together: if the second fails, neither happened, and
    the delivery stays open for the sweeper (before, the money was credited while the delivery read `failed`)."""
    payment = PaymentFactory(donation__patient__funding_goal=Decimal("1000000"))
    real_mark = callbacks.callback_event_mark

    def verdict_fails(event, status, **kwargs):
        if status == CallbackEvent.Status.PROCESSED:
            raise OperationalError(1205, "Lock wait timeout exceeded; try restarting transaction")
        return real_mark(event, status, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(callbacks, "callback_event_mark", verdict_fails)
        response = Client().post(CALLBACK_URL, data=callback_body(payment), content_type="application/json")

    assert response.status_code == 200  # stored and due for a retry: nothing for the provider to resend
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.FAILED
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    patient = payment.donation.patient
    patient.refresh_from_db()  # the factory's instance says 0 whatever the database holds
    assert Allocation.objects.count() == 0 and patient.funding_received == 0

    assert callback_replay(event=event).code == "accepted"  # what the sweeper runs
    assert callback_replay(event=event).code == "accepted"  # and once more: nothing changes
    payment.refresh_from_db()
    patient.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert patient.funding_received == payment.amount and Allocation.objects.count() == 1
    event.refresh_from_db()
    assert event.status == CallbackEvent.Status.IGNORED  # the second replay found it done
