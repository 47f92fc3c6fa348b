"""What the MTN MoMo adapter tests share: the far side's host and paths, our test credentials, a charge, a
payout and a refund, MTN's token answer. The far side is `responses` (each test activates it)."""

import base64
from decimal import Decimal
from functools import partial

import responses

from payments.providers.base import ChargeRequest, PayoutRequest, RefundRequest
from payments.tests.fixtures import load_fixture
from payments.tests.fixtures import raw_fixture as _raw_fixture

API = "https://momo.test"
COLLECTION_TOKEN_URL = f"{API}/collection/token/"
DISBURSEMENT_TOKEN_URL = f"{API}/disbursement/token/"
RTP_URL = f"{API}/collection/v1_0/requesttopay"
TRANSFER_URL = f"{API}/disbursement/v1_0/transfer"
REFUND_URL = f"{API}/disbursement/v1_0/refund"
SITE_URL = "https://donate.example.org"
CALLBACK_URL = f"{SITE_URL}/webhooks/mtn/collection/tok123/"
REFERENCE = "RHCI-DN-12-20261201101500"
PAYOUT_REFERENCE = "RHCI-PO-3-20261201101500"
REFUND_REFERENCE = "RHCI-RF-5-20261201101500"
X_REFERENCE_ID = "3f9c0a1b-2c3d-4e5f-8a9b-0c1d2e3f4a5b"
PAYOUT_REFERENCE_ID = "7d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"
REFUND_REFERENCE_ID = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
API_USER = "aa3f6853-57f2-4348-a29c-ee1376fc28d5"
API_KEY = "be11eaaface14e46a539ff0cb8698148"
COLLECTION_KEY = "collection-subscription-key"
DISBURSEMENT_KEY = "disbursement-subscription-key"
TOKEN = load_fixture("mtn", "token_success.json")["access_token"]
KWARGS = {
    "api_url": API,
    "api_user": API_USER,
    "api_key": API_KEY,
    "collection_subscription_key": COLLECTION_KEY,
    "disbursement_subscription_key": DISBURSEMENT_KEY,
    "target_environment": "sandbox",
    "currency": "EUR",
}

fixture = partial(load_fixture, "mtn")  # fixture("status_successful.json") → a fresh dict
raw_fixture = partial(_raw_fixture, "mtn")  # the bytes as MTN sent them


def basic(user: str = API_USER, key: str = API_KEY) -> str:
    return "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()


def token_ok(url: str = COLLECTION_TOKEN_URL, token: str = TOKEN) -> None:
    responses.post(url, json={**fixture("token_success.json"), "access_token": token})


def charge(amount: str = "50000", msisdn: str = "46733123454", **kw) -> ChargeRequest:
    return ChargeRequest(
        reference=REFERENCE,
        amount=Decimal(amount),
        currency=kw.pop("currency", "EUR"),
        msisdn=msisdn,
        callback_url=kw.pop("callback_url", CALLBACK_URL),
        description=kw.pop("description", f"Donation {REFERENCE}"),
        provider_reference=kw.pop("provider_reference", X_REFERENCE_ID),
        **kw,
    )


def payout(amount: str = "150000", msisdn: str = "46733123470", **kw) -> PayoutRequest:
    return PayoutRequest(
        reference=PAYOUT_REFERENCE,
        msisdn=msisdn,
        amount=Decimal(amount),
        currency=kw.pop("currency", "EUR"),
        result_url=kw.pop("result_url", f"{SITE_URL}/webhooks/mtn/disbursement/"),
        remarks=kw.pop("remarks", "Treatment PAT-0001"),
        provider_reference=kw.pop("provider_reference", PAYOUT_REFERENCE_ID),
        **kw,
    )


def refund(amount: str = "20000", **kw) -> RefundRequest:
    return RefundRequest(
        reference=REFUND_REFERENCE,
        payment_reference=kw.pop("payment_reference", X_REFERENCE_ID),
        amount=Decimal(amount),
        currency=kw.pop("currency", "EUR"),
        result_url=kw.pop("result_url", f"{SITE_URL}/webhooks/mtn/refund/rtok/"),
        reason=kw.pop("reason", "Donor's request & refund"),
        provider_reference=kw.pop("provider_reference", REFUND_REFERENCE_ID),
        **kw,
    )
