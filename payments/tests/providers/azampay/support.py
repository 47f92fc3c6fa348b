"""What the AzamPay adapter tests share: a provider built from test credentials (not from settings), the
charges and references they use."""

from datetime import datetime
from decimal import Decimal

import responses

from payments.providers.azampay.provider import AzamPayProvider
from payments.providers.base import ChargeRequest, PaymentRef
from payments.tests.azampay_fakes import API, AUTH, PASSWORD, fixture

REFERENCE = "RHCI-DN-7-20260101120000"
TRANSACTION_ID = "b85e971981844a6f8888b42579655b8f"
KWARGS = {
    "app_name": "DemoApp",
    "client_id": "7f2cd55d-47d3-43b4-90c4-9a98a49bb11a",
    "client_secret": "RfNxSk3mjV5T79GgQIVy-test-only",
    "auth_url": AUTH,
    "api_url": API,
    "vendor_id": "e9b57fab-1850-44d4-8499-71fd15c845a0",
    "callback_password": PASSWORD,
}


def token_payload(*, token: str = "test-token", expire: datetime | None = None) -> dict:
    payload = fixture("token_success.json")
    payload["data"]["accessToken"] = token
    if expire is not None:
        payload["data"]["expire"] = expire.strftime("%Y-%m-%dT%H:%M:%SZ")
    return payload


def make_provider(**overrides) -> AzamPayProvider:
    return AzamPayProvider(**{**KWARGS, **overrides})


def mno_charge(**overrides) -> ChargeRequest:
    fields = {
        "reference": REFERENCE,
        "amount": Decimal("5000.00"),
        "currency": "TZS",
        "msisdn": "255712345678",
        "channel": "Mpesa",
    }
    return ChargeRequest(**{**fields, **overrides})


def calls_to(mock: responses.RequestsMock, url: str) -> list:
    return [call for call in mock.calls if call.request.url.split("?")[0] == url]


def status_ref(**overrides) -> PaymentRef:
    return PaymentRef(**{"reference": REFERENCE, "provider_reference": TRANSACTION_ID, "channel": "Mpesa", **overrides})
