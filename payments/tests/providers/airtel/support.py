"""What the Airtel adapter tests share: a provider built from test values (not from settings), Airtel's URLs,
the fixtures (real shapes from docs/providers/airtel.md), an RSA key pair standing in for Airtel's."""

import base64
import functools
import json
from decimal import Decimal
from pathlib import Path

import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from payments.providers.airtel.provider import AirtelProvider
from payments.providers.base import ChargeRequest, PaymentRef, PayoutRequest, RefundRequest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "airtel"
API = "https://openapiuat.airtel.africa"
TOKEN_URL = f"{API}/auth/oauth2/token"
PUSH_V1_URL = f"{API}/merchant/v1/payments/"
PUSH_V2_URL = f"{API}/merchant/v2/payments/"
REFUND_URL = f"{API}/standard/v1/payments/refund"
DISBURSEMENT_URL = f"{API}/standard/v1/disbursements/"
KEYS_URL = f"{API}/v1/rsa/encryption-keys"
REFERENCE = "RHCI-DN-123-20251219120000"
AIRTEL_ID = "RHCIDN12320251219120000"  # the reference in Airtel's alphabet
ENQUIRY_URL = f"{API}/standard/v1/payments/{AIRTEL_ID}"
PAYOUT_REFERENCE = "RHCI-PO-0123456789abcdef"
PAYOUT_ID = "RHCIPO0123456789abcdef"
DISBURSEMENT_ENQUIRY_URL = f"{API}/standard/v1/disbursements/{PAYOUT_ID}"
SECRET = "test-callback-secret"
PIN = "4321"
KWARGS = {"api_url": API, "client_id": "test-client-id", "client_secret": "test-client-secret"}


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


def raw_fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@functools.cache
def private_key() -> rsa.RSAPrivateKey:
    """A test key pair standing in for Airtel's (generated once per run)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem() -> str:
    return (
        private_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def public_der_b64() -> str:
    der = (
        private_key()
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(der).decode()


def make_provider(**overrides) -> AirtelProvider:
    return AirtelProvider(**{**KWARGS, **overrides})


def charge(**overrides) -> ChargeRequest:
    fields = {"reference": REFERENCE, "amount": Decimal("5000"), "currency": "UGX", "msisdn": "256712345678"}
    return ChargeRequest(**{**fields, **overrides})


def ref(**overrides) -> PaymentRef:
    return PaymentRef(**{"reference": REFERENCE, "provider_reference": "", **overrides})


def payout(**overrides) -> PayoutRequest:
    fields = {
        "reference": PAYOUT_REFERENCE,
        "msisdn": "256700160185",
        "amount": Decimal("1000"),
        "currency": "UGX",
        "result_url": "",
    }
    return PayoutRequest(**{**fields, **overrides})


def refund(**overrides) -> RefundRequest:
    fields = {
        "reference": "RHCI-RF-0123456789abcdef",
        "payment_reference": "CI210104.1105.C00018",
        "amount": Decimal("5000"),
        "currency": "UGX",
        "payment_receipt": "CI210104.1105.C00018",
    }
    return RefundRequest(**{**fields, **overrides})


def calls_to(mock: responses.RequestsMock, url: str) -> list:
    return [call for call in mock.calls if call.request.url.split("?")[0] == url]


def sent_json(call) -> dict:
    return json.loads(call.request.body)
