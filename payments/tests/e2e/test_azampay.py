"""End to end over real HTTP: the live site, the running provider sandbox, real callbacks between them.

One test per row of docs/api.md's outcome table. The sandbox runs ten times faster than real time.
"""

import time
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from django.utils import timezone

from donor.models import Allocation, Donation
from patients.tests.factories import PatientFactory
from payments.models import CallbackEvent, Payment
from payments.providers.azampay.config import CONFIG as AZAMPAY_CONFIG
from payments.sandbox.server import run_sandbox
from payments.services.reconcile import payments_reconcile
from payments.tests.azampay_fakes import CALLBACK_URL as CALLBACK_PATH
from payments.tests.e2e.support import refresh, wait_for_status
from payments.tests.helpers import credited

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
TIME_SCALE = 0.1


@pytest.fixture
def sandbox(live_server, settings):
    server = run_sandbox(port=0, callback_url=live_server.url + CALLBACK_PATH, time_scale=TIME_SCALE)
    config = dict(settings.PAYMENT_PROVIDERS["azampay"])
    config.update(AZAMPAY_CONFIG.sandbox_credentials())
    config.update(
        {
            "auth_url": f"{server.base_url}/azampay-auth",
            "api_url": f"{server.base_url}/azampay",
            "callback_password": settings.PAYMENT_PROVIDERS["azampay"]["callback_password"],
        }
    )
    settings.PAYMENT_PROVIDERS = {**settings.PAYMENT_PROVIDERS, "azampay": config}
    settings.SITE_URL = live_server.url
    yield server
    server.shutdown()


@pytest.fixture
def patient(db):
    return PatientFactory(code="PAT-0001", currency="TZS", funding_goal=Decimal("10000000"))


def donate(live_server, phone: str, amount: str = "5000", channel: str = "Mpesa") -> dict:
    response = requests.post(
        f"{live_server.url}/api/v1.0/donors/donations/",
        json={
            "patient": "PAT-0001",
            "amount": amount,
            "currency": "TZS",
            "provider": "azampay",
            "channel": channel,
            "phone_number": phone,
            "email": "donor@example.org",
            "name": "Asha",
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()


def sandbox_charge(sandbox, reference: str) -> dict:
    return next(c for c in sandbox.store.charges_json() if c["externalId"] == reference)


def test_success_completes_within_seconds_with_receipt(live_server, sandbox, patient):
    created = donate(live_server, "0712345678")
    assert created["next_action"]["type"] == "await_phone_confirmation"
    status = wait_for_status(live_server, created["reference"])
    assert status["status"] == "completed"
    assert status["receipt"]
    assert status["transactionId"] == created["payment"]["provider_reference"]
    assert credited(patient) == Decimal("5000")


def test_insufficient_funds_fails_with_reason(live_server, sandbox, patient):
    status = wait_for_status(live_server, donate(live_server, "0712345601")["reference"])
    assert status["status"] == "failed"
    assert "insufficient" in status["status_reason"].lower()
    assert credited(patient) == 0


def test_cancelled_on_the_phone(live_server, sandbox, patient):
    status = wait_for_status(live_server, donate(live_server, "0712345602")["reference"])
    assert status["status"] == "cancelled"
    assert credited(patient) == 0


def test_no_answer_expires_after_the_provider_times_out(live_server, sandbox, patient):
    reference = donate(live_server, "0712345603")["reference"]
    time.sleep(1.0)
    assert wait_for_status(live_server, reference, seconds=0)["status"] == "pending"
    assert sandbox_charge(sandbox, reference)["deliveries"] == []
    deadline = time.monotonic() + 15
    status = {}
    while time.monotonic() < deadline:  # the donor's page presses "refresh": ask the provider now
        status = refresh(live_server, reference).json()
        if status["status"] != "pending":
            break
        time.sleep(0.3)
    assert status["status"] == "expired"
    assert credited(patient) == 0


def test_three_concurrent_duplicate_callbacks_credit_once(live_server, sandbox, patient):
    reference = donate(live_server, "0712345604")["reference"]
    assert wait_for_status(live_server, reference)["status"] == "completed"
    deadline = time.monotonic() + 10
    while len(sandbox_charge(sandbox, reference)["deliveries"]) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(sandbox_charge(sandbox, reference)["deliveries"]) == 3
    assert credited(patient) == Decimal("5000")
    assert Allocation.objects.filter(donation__reference=reference).count() == 1
    first = CallbackEvent.objects.get(our_reference=reference, duplicate_of=None)
    statuses = sorted(CallbackEvent.objects.filter(body_digest=first.body_digest).values_list("status", flat=True))
    # One copy credits; a copy that arrived while the first was still being handled is handled too (the
    # inbox never swallows a copy of an unsettled delivery) and finds it done ("ignored"); a later one is a
    # plain "duplicate".
    assert statuses.count("processed") == 1
    assert set(statuses) - {"processed"} <= {"duplicate", "ignored"} and len(statuses) == 3


def test_lost_callback_is_found_by_reconciliation(live_server, sandbox, patient):
    reference = donate(live_server, "0712345605")["reference"]
    time.sleep(1.0)
    assert wait_for_status(live_server, reference, seconds=0)["status"] == "pending"
    Payment.objects.filter(reference=reference).update(next_check_at=timezone.now() - timedelta(seconds=1))
    report = payments_reconcile()
    assert report.changed == 1
    assert wait_for_status(live_server, reference, seconds=0)["status"] == "completed"
    assert sandbox_charge(sandbox, reference)["deliveries"] == []
    assert credited(patient) == Decimal("5000")


def test_late_callback_still_completes(live_server, sandbox, patient):
    reference = donate(live_server, "0712345606")["reference"]
    time.sleep(0.5)
    assert wait_for_status(live_server, reference, seconds=0)["status"] == "pending"
    assert wait_for_status(live_server, reference, seconds=15)["status"] == "completed"
    assert credited(patient) == Decimal("5000")


def test_failure_then_success_out_of_order_ends_completed_once(live_server, sandbox, patient):
    reference = donate(live_server, "0712345607")["reference"]
    deadline = time.monotonic() + 15
    while len(sandbox_charge(sandbox, reference)["deliveries"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    status = wait_for_status(live_server, reference, until=lambda s: s == "completed", seconds=5)
    assert status["status"] == "completed"
    assert credited(patient) == Decimal("5000")
    assert Donation.objects.get(reference=reference).allocations.count() == 1


def test_card_checkout_redirects_to_the_sandbox_page(live_server, sandbox, patient):
    created = donate(live_server, "", channel="card")
    assert created["next_action"]["type"] == "redirect"
    page = requests.get(created["next_action"]["url"], timeout=10)
    assert page.status_code == 200
