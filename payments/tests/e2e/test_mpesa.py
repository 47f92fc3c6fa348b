"""M-Pesa end to end, what is its own: whole shillings only, and paybill (C2B) payments that name a patient's
code, validated and confirmed by Daraja's calls to the URLs we register. The STK outcome table, forged callbacks
and unconfirmed ones at the base path and the public aliases, and B2C payouts are proven for it with every
provider in test_pipeline.py (its facts: drivers.py, `Mpesa`)."""

import hashlib
import json
from decimal import Decimal

import pytest
import requests
from django.core.management import call_command

from donor.models import Donation
from payments.providers.mpesa.config import CONFIG as MPESA_CONFIG
from payments.tests.e2e.support import sandbox_charge, wait_until
from payments.tests.helpers import credited

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PROVIDER = "mpesa"
CREDS = MPESA_CONFIG.sandbox_credentials()
PAYER = "254708374149"


def test_fractional_shillings_are_refused_not_rounded(live_server, driver, sandbox, patient):
    response = requests.post(
        f"{live_server.url}/api/v1.0/donors/donations/",
        json={
            "patient": driver.patient,
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


def pay_bill(sandbox, account: str) -> requests.Response:
    """The payer pays KES 750 to our paybill with `account` as its account number (Daraja's C2B simulate), once
    our validation and confirmation URLs are registered."""
    call_command("mpesa_register_c2b")
    token = requests.get(
        f"{sandbox.base_url}/daraja/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        auth=(CREDS["consumer_key"], CREDS["consumer_secret"]),
        timeout=5,
    ).json()["access_token"]
    return requests.post(
        f"{sandbox.base_url}/daraja/mpesa/c2b/v2/simulate",
        json={
            "ShortCode": CREDS["c2b_shortcode"],
            "CommandID": "CustomerPayBillOnline",
            "Amount": 750,
            "Msisdn": PAYER,
            "BillRefNumber": account,
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )


def paybill_deliveries(sandbox, count: int) -> list[dict]:
    """Daraja's calls about the paybill payment once there are `count` (the sandbox records one when the site
    has answered it), or the time is up."""
    wait_until(lambda: len(sandbox_charge(sandbox, "mpesa", channel="c2b")["deliveries"]) >= count, seconds=10)
    return sandbox_charge(sandbox, "mpesa", channel="c2b")["deliveries"]


def test_paybill_payment_to_a_patient_code_lands_on_that_patient(live_server, sandbox, patient):
    simulate = pay_bill(sandbox, "pat-ke-01 ")
    assert simulate.status_code == 200 and simulate.json()["ResponseCode"] == "0"
    wait_until(lambda: Donation.objects.filter(status=Donation.Status.COMPLETED).exists(), seconds=10)
    donation = Donation.objects.get()
    assert donation.status == Donation.Status.COMPLETED and donation.patient == patient
    assert donation.donor.phone == ""  # Daraja (and its simulator) hash the MSISDN: not a phone number
    assert donation.payments.get().payer_reference == hashlib.sha256(PAYER.encode()).hexdigest()
    assert credited(patient) == Decimal("750")
    deliveries = paybill_deliveries(sandbox, 2)
    assert [d["label"] for d in deliveries] == ["c2b_validation", "c2b_confirmation"]
    assert all(d["http_status"] == 200 for d in deliveries)


def test_paybill_payment_to_an_unknown_account_is_rejected_at_validation(live_server, sandbox, patient):
    pay_bill(sandbox, "NOBODY")
    deliveries = paybill_deliveries(sandbox, 1)
    assert [d["label"] for d in deliveries] == ["c2b_validation"]
    assert json.loads(deliveries[0]["response"]) == {"ResultCode": "C2B00012", "ResultDesc": "Rejected"}
    assert Donation.objects.count() == 0
