"""The donation API against a real MariaDB/MySQL server: concurrent requests with one Idempotency-Key.

Skipped on SQLite (conftest). Each thread has its own test Client and database connection.
"""

import json
import time
from decimal import Decimal

import pytest
import responses
from django.test import Client

from donor.models import Donation
from patients.tests.factories import PatientFactory
from payments.models import IdempotencyRecord, Payment
from payments.tests.azampay_fakes import MNO_URL, fixture
from payments.tests.helpers import run_together

pytestmark = [pytest.mark.mysql, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("azampay_settings")]

DONATIONS_URL = "/api/v1.0/donors/donations/"


def test_concurrent_creates_with_the_same_idempotency_key_make_one_donation_and_one_charge(azam):
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

    checkout = azam.add_callback(responses.POST, MNO_URL, callback=slow_checkout)
    answers = run_together([create] * 5)

    assert checkout.call_count == 1
    assert {status for status, _ in answers} == {201}
    assert all(answer == answers[0][1] for _, answer in answers)
    assert Donation.objects.count() == 1
    assert Payment.objects.count() == 1
    assert IdempotencyRecord.objects.count() == 1
