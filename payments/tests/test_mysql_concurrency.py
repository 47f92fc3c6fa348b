"""Concurrent callbacks and donation requests against a real MariaDB/MySQL server.

Skipped on SQLite (conftest); CI runs them on MariaDB. Each thread has its own test Client and its own
database connection, closed when the thread ends.
"""

import json
import threading
import time
from decimal import Decimal

import pytest
import responses
from django.db import connection
from django.test import Client

from donor.models import Allocation, Donation
from donor.tests.factories import DonationFactory
from patients.tests.factories import PatientFactory
from payments.models import CallbackEvent, IdempotencyRecord, Payment
from payments.tests.azampay_fakes import API, PASSWORD, TOKEN_URL, fixture
from payments.tests.factories import PaymentFactory

pytestmark = [pytest.mark.mysql, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("azampay_settings")]

CALLBACK_URL = "/api/v1.0/donors/payment/azampay/callback/"
DONATIONS_URL = "/api/v1.0/donors/donations/"
MNO_URL = f"{API}/azampay/mno/checkout"
ACK = {"success": True, "message": "Callback received"}
THREADS = 20


def callback_body(payment: Payment) -> bytes:
    data = fixture("callback_real_sandbox.json") | {
        "utilityref": payment.reference,
        "reference": payment.provider_reference,
        "externalreference": payment.provider_reference,
        "transid": payment.provider_reference,
        "amount": f"{payment.amount:.0f}",
        "password": PASSWORD,
    }
    return json.dumps(data).encode()


def run_together(targets) -> list:
    """Start every target at the same instant (a barrier); re-raise the first error in the main thread."""
    barrier = threading.Barrier(len(targets))
    results: list = [None] * len(targets)
    errors: list[BaseException] = []

    def worker(index, target):
        try:
            barrier.wait()
            results[index] = target()
        except BaseException as exc:  # collected and re-raised below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a thread is still running after 60 s"
    assert not errors, errors
    return results


def post_callback(body: bytes):
    def send():
        response = Client().post(CALLBACK_URL, data=body, content_type="application/json")
        return response.status_code, response.json()

    return send


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


def test_concurrent_creates_with_the_same_idempotency_key_make_one_donation_and_one_charge():
    patient = PatientFactory(funding_goal=Decimal("1000000"))
    body = {
        "patient": patient.code,
        "amount": "5000",
        "currency": "TZS",
        "provider": "azampay",
        "channel": "Mpesa",
        "phone_number": "0712345678",
    }

    def slow_checkout(request):
        time.sleep(0.3)  # keep the first request inside the provider call while the others arrive
        return 200, {}, json.dumps(fixture("mno_checkout_success.json"))

    def create():
        response = Client().post(
            DONATIONS_URL, data=body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="order-42-retry"
        )
        return response.status_code, response.json()

    with responses.RequestsMock(assert_all_requests_are_fired=False) as azam:
        azam.post(TOKEN_URL, json=fixture("token_success.json"))
        checkout = azam.add_callback(responses.POST, MNO_URL, callback=slow_checkout)
        answers = run_together([create] * 5)

    assert checkout.call_count == 1
    assert {status for status, _ in answers} == {201}
    assert all(answer == answers[0][1] for _, answer in answers)
    assert Donation.objects.count() == 1
    assert Payment.objects.count() == 1
    assert IdempotencyRecord.objects.count() == 1
