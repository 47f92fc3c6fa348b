"""M-Pesa end to end over real HTTP: the live site, the Daraja simulator (/daraja), real STK callbacks.

One test per row of docs/api.md's outcome table, plus the forged callbacks an unsigned rail invites. The sandbox
runs ten times faster than real time. Every STK callback is confirmed with the STK Push Query before a credit.
"""

import hashlib
import json
import time
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

from donor.models import Allocation, Donation
from patients.tests.factories import PatientFactory
from payments.models import CallbackEvent, Payment
from payments.providers.mpesa.config import CONFIG as MPESA_CONFIG
from payments.sandbox.daraja import build_stk_callback
from payments.sandbox.server import run_sandbox
from payments.services.reconcile import payments_reconcile
from payments.tests.e2e.support import status_of, wait_for_status
from payments.tests.helpers import credited
from payments.url_tokens import url_token_digest

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
TIME_SCALE = 0.1
PATIENT = "PAT-KE-01"
ACK = {"ResultCode": 0, "ResultDesc": "Accepted"}
CREDS = MPESA_CONFIG.sandbox_credentials()


@pytest.fixture
def sandbox(live_server, settings):
    cache.clear()
    server = run_sandbox(port=0, callback_url=live_server.url + "/unused/", time_scale=TIME_SCALE)
    config = {
        **settings.PAYMENT_PROVIDERS["mpesa"],
        **MPESA_CONFIG.sandbox_credentials(),
        "api_url": f"{server.base_url}/daraja",
        "callback_url": "",
        "trust_callbacks": False,
        "allowed_ips": [],
        "ip_allowlist_strict": False,
    }
    settings.PAYMENT_PROVIDERS = {**settings.PAYMENT_PROVIDERS, "mpesa": config}
    settings.SITE_URL = live_server.url
    yield server
    server.shutdown()
    cache.clear()


@pytest.fixture
def patient(db):
    return PatientFactory(code=PATIENT, currency="KES", funding_goal=Decimal("1000000"))


def donate(live_server, phone: str, amount: str = "1000") -> dict:
    response = requests.post(
        f"{live_server.url}/api/v1.0/donors/donations/",
        json={
            "patient": PATIENT,
            "amount": amount,
            "currency": "KES",
            "provider": "mpesa",
            "phone_number": phone,
            "email": "donor@example.org",
            "name": "Wanjiku",
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()


def sandbox_charge(sandbox, checkout_id: str) -> dict:
    return next(c for c in sandbox.store.charges_json(provider="mpesa") if c["transactionId"] == checkout_id)


def wait_for_deliveries(sandbox, checkout_id: str, count: int, seconds: float = 15) -> list:
    deadline = time.monotonic() + seconds
    while len(sandbox_charge(sandbox, checkout_id)["deliveries"]) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return sandbox_charge(sandbox, checkout_id)["deliveries"]


def test_success_completes_after_the_stk_query_confirms(live_server, sandbox, patient):
    created = donate(live_server, "0712345678")
    assert created["next_action"]["type"] == "await_phone_confirmation"
    checkout_id = created["payment"]["provider_reference"]
    assert checkout_id.startswith("ws_CO_")
    status = wait_for_status(live_server, created["reference"])
    assert status["status"] == "completed"
    assert status["transactionId"] == checkout_id
    assert credited(patient) == Decimal("1000")
    wait_for_deliveries(sandbox, checkout_id, 1)  # recorded once the site has answered it
    charge = sandbox_charge(sandbox, checkout_id)
    assert charge["msisdn"] == "254712345678"
    assert charge["amount"] == "1000"
    [delivery] = charge["deliveries"]
    prefix = f"{live_server.url}/webhooks/mpesa/stkpush/"
    assert delivery["url"].startswith(prefix)
    token = delivery["url"].removeprefix(prefix).rstrip("/")
    # The payment keeps only a keyed digest of the secret it handed to Daraja, never the secret.
    assert Payment.objects.get().callback_token_digest == url_token_digest(token) != token
    assert delivery["http_status"] == 200 and json.loads(delivery["response"]) == ACK
    assert charge["extra"]["queries"] >= 1  # the callback alone credited nothing: the query confirmed it


def test_insufficient_funds_fails_with_the_reason(live_server, sandbox, patient):
    status = wait_for_status(live_server, donate(live_server, "0712345601")["reference"])
    assert status["status"] == "failed"
    assert "insufficient" in status["status_reason"].lower()
    assert "(M-Pesa 1)" in Payment.objects.get().failure_reason
    assert credited(patient) == 0


def test_cancelled_on_the_phone_1032(live_server, sandbox, patient):
    status = wait_for_status(live_server, donate(live_server, "0712345602")["reference"])
    assert status["status"] == "cancelled"
    assert "1032" in Payment.objects.get().failure_reason
    assert credited(patient) == 0


def test_no_answer_expires_after_the_provider_times_out_1037(live_server, sandbox, patient):
    created = donate(live_server, "0712345603")
    time.sleep(1.0)
    # While the prompt is open the query answers both pending quirks; neither is a failure.
    refresh_url = f"{live_server.url}/api/v1.0/donors/donations/{created['public_token']}/refresh/"
    assert requests.post(refresh_url, timeout=10).json()["status"] == "pending"
    assert requests.post(refresh_url, timeout=10).json()["status"] == "pending"
    assert sandbox_charge(sandbox, created["payment"]["provider_reference"])["deliveries"] == []
    deadline = time.monotonic() + 15
    status = {}
    while time.monotonic() < deadline:
        status = requests.post(refresh_url, timeout=10).json()
        if status["status"] != "pending":
            break
        time.sleep(0.3)
    assert status["status"] == "expired"
    assert "1037" in Payment.objects.get().failure_reason
    assert credited(patient) == 0


def test_three_concurrent_duplicate_callbacks_credit_once(live_server, sandbox, patient):
    created = donate(live_server, "0712345604")
    reference = created["reference"]
    assert wait_for_status(live_server, reference)["status"] == "completed"
    deliveries = wait_for_deliveries(sandbox, created["payment"]["provider_reference"], 3)
    assert len(deliveries) == 3
    assert all(d["http_status"] == 200 for d in deliveries)
    time.sleep(0.3)
    assert credited(patient) == Decimal("1000")
    assert Allocation.objects.filter(donation__reference=reference).count() == 1
    assert CallbackEvent.objects.filter(provider="mpesa").count() == 3
    assert CallbackEvent.objects.filter(provider="mpesa", status=CallbackEvent.Status.PROCESSED).count() == 1


def test_lost_callback_is_found_by_reconciliation(live_server, sandbox, patient):
    created = donate(live_server, "0712345605")
    reference = created["reference"]
    time.sleep(1.0)
    assert status_of(live_server, reference)["status"] == "pending"
    Payment.objects.filter(reference=reference).update(next_check_at=timezone.now() - timedelta(seconds=1))
    report = payments_reconcile()
    assert report.changed == 1
    assert status_of(live_server, reference)["status"] == "completed"
    assert sandbox_charge(sandbox, created["payment"]["provider_reference"])["deliveries"] == []
    assert credited(patient) == Decimal("1000")


def test_late_callback_still_completes(live_server, sandbox, patient):
    reference = donate(live_server, "0712345606")["reference"]
    time.sleep(0.3)
    assert status_of(live_server, reference)["status"] == "pending"
    assert wait_for_status(live_server, reference, seconds=15)["status"] == "completed"
    assert credited(patient) == Decimal("1000")


def test_failure_then_success_out_of_order_ends_completed_once(live_server, sandbox, patient):
    created = donate(live_server, "0712345607")
    reference = created["reference"]
    wait_for_deliveries(sandbox, created["payment"]["provider_reference"], 2)
    status = wait_for_status(live_server, reference, until=lambda s: s == "completed", seconds=5)
    assert status["status"] == "completed"
    assert credited(patient) == Decimal("1000")
    assert Donation.objects.get(reference=reference).allocations.count() == 1


def forged_success(checkout_id: str, amount: int = 1000) -> bytes:
    return json.dumps(
        build_stk_callback(
            merchant_request_id="1234-5678-1",
            checkout_request_id=checkout_id,
            result_code=0,
            result_desc="The service request is processed successfully.",
            amount=amount,
            receipt="FORGED0001",
            phone="254712345603",
            transaction_date="20260101120000",
        )
    ).encode()


@pytest.mark.parametrize(
    "path",
    ["/webhooks/mpesa/stkpush/", "/webhooks/mpesa/stkpush", "/api/v1/payments/mpesa/callback", "/mpesa/callback/"],
)
def test_forged_success_at_the_base_path_is_not_credited_while_the_provider_says_pending(
    live_server, sandbox, patient, path
):
    created = donate(live_server, "0712345603")  # the payer never answers: Daraja keeps saying "pending"
    reference = created["reference"]
    response = requests.post(
        live_server.url + path,
        data=forged_success(created["payment"]["provider_reference"]),
        headers={"Content-Type": "application/json"},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json() == ACK  # answered like Daraja expects; nothing told to the forger
    assert status_of(live_server, reference)["status"] == "pending"
    assert credited(patient) == 0
    event = CallbackEvent.objects.get(provider="mpesa")
    assert event.status == CallbackEvent.Status.REVIEW
    assert event.trust == "unverified"
    assert "pending" in event.error


def test_forged_success_with_a_wrong_token_is_rejected(live_server, sandbox, patient):
    created = donate(live_server, "0712345603")
    response = requests.post(
        f"{live_server.url}/webhooks/mpesa/stkpush/not-the-token/",
        data=forged_success(created["payment"]["provider_reference"]),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json()["code"] == "AUTH_REQUIRED"
    assert CallbackEvent.objects.get(provider="mpesa").status == CallbackEvent.Status.REJECTED
    assert status_of(live_server, created["reference"])["status"] == "pending"
    assert credited(patient) == 0


def test_health_endpoint(live_server, sandbox, patient):
    donate(live_server, "0712345603")
    for path in ("/webhooks/mpesa/health/", "/webhooks/mpesa/health"):
        body = requests.get(live_server.url + path, allow_redirects=False, timeout=10).json()
        assert body["status"] == "healthy"
        assert body["provider"] == "mpesa"
        assert body["pending_payments"] == 1
        assert "timestamp" in body and "last_callback_at" in body


def test_fractional_shillings_are_refused_not_rounded(live_server, sandbox, patient):
    response = requests.post(
        f"{live_server.url}/api/v1.0/donors/donations/",
        json={
            "patient": PATIENT,
            "amount": "1000.50",
            "currency": "KES",
            "provider": "mpesa",
            "phone_number": "0712345678",
        },
        timeout=30,
    )
    assert response.status_code in (400, 502)
    assert "whole" in response.json()["message"]
    assert sandbox.store.charges_json(provider="mpesa") == []
    assert credited(patient) == 0


def test_paybill_payment_to_a_patient_code_lands_on_that_patient(live_server, sandbox, patient):
    call_command("mpesa_register_c2b")
    token = requests.get(
        f"{sandbox.base_url}/daraja/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        auth=(CREDS["consumer_key"], CREDS["consumer_secret"]),
        timeout=5,
    ).json()["access_token"]
    simulate = requests.post(
        f"{sandbox.base_url}/daraja/mpesa/c2b/v2/simulate",
        json={
            "ShortCode": CREDS["c2b_shortcode"],
            "CommandID": "CustomerPayBillOnline",
            "Amount": 750,
            "Msisdn": "254708374149",
            "BillRefNumber": "pat-ke-01 ",
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert simulate.status_code == 200 and simulate.json()["ResponseCode"] == "0"
    deadline = time.monotonic() + 10
    while not Donation.objects.filter(status=Donation.Status.COMPLETED).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    donation = Donation.objects.get()
    assert donation.status == Donation.Status.COMPLETED and donation.patient == patient
    assert donation.donor.phone == ""  # Daraja (and its simulator) hash the MSISDN: not a phone number
    assert donation.payments.get().payer_reference == hashlib.sha256(b"254708374149").hexdigest()
    assert credited(patient) == Decimal("750")
    deadline = time.monotonic() + 5
    while True:  # the sandbox records a delivery once the site has answered it
        [charge] = [c for c in sandbox.store.charges_json(provider="mpesa") if c["channel"] == "c2b"]
        if len(charge["deliveries"]) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert [d["label"] for d in charge["deliveries"]] == ["c2b_validation", "c2b_confirmation"]
    assert all(d["http_status"] == 200 for d in charge["deliveries"])


def test_paybill_payment_to_an_unknown_account_is_rejected_at_validation(live_server, sandbox, patient):
    call_command("mpesa_register_c2b")
    token = requests.get(
        f"{sandbox.base_url}/daraja/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        auth=(CREDS["consumer_key"], CREDS["consumer_secret"]),
        timeout=5,
    ).json()["access_token"]
    requests.post(
        f"{sandbox.base_url}/daraja/mpesa/c2b/v2/simulate",
        json={
            "ShortCode": CREDS["c2b_shortcode"],
            "CommandID": "CustomerPayBillOnline",
            "Amount": 750,
            "Msisdn": "254708374149",
            "BillRefNumber": "NOBODY",
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    deadline = time.monotonic() + 10
    charge = {}
    while time.monotonic() < deadline:
        [charge] = [c for c in sandbox.store.charges_json(provider="mpesa") if c["channel"] == "c2b"]
        if charge["deliveries"]:
            break
        time.sleep(0.1)
    assert [d["label"] for d in charge["deliveries"]] == ["c2b_validation"]
    assert json.loads(charge["deliveries"][0]["response"]) == {"ResultCode": "C2B00012", "ResultDesc": "Rejected"}
    assert Donation.objects.count() == 0


@pytest.mark.parametrize(("msisdn", "first"), [("254708374149", None), ("254708374103", "ambiguous")])
def test_payout_goes_through_maker_checker_and_its_callbacks(live_server, sandbox, maker, checker, msisdn, first):

    from patients.models import Patient
    from patients.tests.factories import TreatmentPartnerFactory
    from payments.models import Payout
    from payments.services.payouts import payout_approve, payout_request

    partner = TreatmentPartnerFactory(payout_provider="mpesa", payout_msisdn=msisdn, country="KE")
    funded = PatientFactory(
        code="PAT-KE-30",
        currency="KES",
        funding_goal=Decimal("20000"),
        funding_received=Decimal("20000"),
        status=Patient.Status.FULLY_FUNDED,
        treatment_partner=partner,
    )
    payout = payout_approve(
        payout_id=payout_request(patient=funded, amount=Decimal("15000"), requested_by=maker).pk, approved_by=checker
    )
    assert payout.status == Payout.Status.SENT
    seen = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        payout.refresh_from_db()
        seen.add(payout.status)
        if payout.status == Payout.Status.PAID:
            break
        time.sleep(0.02)
    assert payout.status == Payout.Status.PAID and payout.receipt
    if first:
        assert first in seen
    funded.refresh_from_db()
    assert funded.status == Patient.Status.IN_TREATMENT
    [charge] = [c for c in sandbox.store.charges_json(provider="mpesa") if c["channel"] == "b2c"]
    assert charge["externalId"] == payout.reference and charge["amount"] == "15000"
