"""AzamPay's callback: parsing every real payload (fixtures/azampay), authenticating it (the dashboard's
password, the RSA signature), redacting it for storage, acknowledging it. No HTTP, no database."""

import base64
import json
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from payments.providers.azampay.provider import AzamPayProvider
from payments.providers.base import CallbackMalformed, CallbackTrust, PaymentStatus, RawCallback
from payments.tests.azampay_fakes import FIXTURES, PASSWORD, fixture, raw_fixture
from payments.tests.providers.azampay.support import make_provider


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def signed_callback(key, **overrides) -> dict:
    data = {**fixture("callback_documented_superset.json"), **overrides}
    message = "".join(str(data[k]) for k in ("utilityref", "externalreference", "transactionstatus", "operator"))
    signature = key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
    data["signature"] = base64.b64encode(signature).decode()
    return data


# --- callbacks: parsing -------------------------------------------------------------------------------

CALLBACK_EXPECTATIONS = {
    "callback_real_sandbox.json": {
        "status": PaymentStatus.SUCCEEDED,
        "our_reference": "BOOKING-HSE-000009-1767956005",
        "provider_reference": "5aae72e0e5974f0e8319394167d7708f",
        "amount": Decimal("60000"),
        "receipt": "a068932f-09a8-4ff4-82c0-6efa13def8d5",
        "msisdn": "255758285812",
    },
    "callback_documented_superset.json": {
        "status": PaymentStatus.SUCCEEDED,
        "our_reference": "DON-000123",
        "provider_reference": "b85e971981844a6f8888b42579655b8f",
        "amount": Decimal("1000"),
        "receipt": "MP240101.1234.A12345",
        "msisdn": "255713123456",
    },
    "callback_failure.json": {
        "status": PaymentStatus.FAILED,
        "our_reference": "RHCI-DN-42-20251219120000",
        "provider_reference": "0f1e2d3c4b5a49687766554433221100",
        "amount": Decimal("5000"),
        "message": "Insufficient balance",
    },
    "callback_cancelled.json": {
        "status": PaymentStatus.CANCELLED,
        "our_reference": "RHCI-DN-43-20251219120000",
        "amount": Decimal("2000"),
    },
    "callback_uppercase_keys.json": {
        "status": PaymentStatus.SUCCEEDED,
        "our_reference": "RHCI-DN-44-20251219120000",
        "provider_reference": "7d6c5b4a39284716a5b4c3d2e1f00918",
        "amount": Decimal("15000"),
        "receipt": "HP-20251219-0001",
    },
    "callback_mixed_case_keys.json": {
        "status": PaymentStatus.SUCCEEDED,
        "our_reference": "RHCI-DN-45-20251219120000",
        "provider_reference": "8e7f6a5b4c3d42e1f0a9b8c7d6e5f4a3",
        "amount": Decimal("7500"),
        "receipt": "AZ-77-0001",
    },
    "callback_externalreference_variant.json": {
        "status": PaymentStatus.SUCCEEDED,
        "our_reference": "RHCI-DN-999-20251219120000",  # no utilityref: our id came in externalreference
        "provider_reference": "TEST123",
        "amount": Decimal("1000"),
        "receipt": "MPE123",
    },
    "callback_amount_with_separators.json": {
        "status": PaymentStatus.SUCCEEDED,
        "our_reference": "RHCI-DN-46-20251219120000",
        "amount": Decimal("1000"),  # "1,000.00"
    },
}
CALLBACK_FILES = sorted(path.name for path in FIXTURES.glob("callback_*.json"))


def test_every_callback_fixture_has_an_expectation():
    assert CALLBACK_FILES == sorted(CALLBACK_EXPECTATIONS)


@pytest.mark.parametrize("name", CALLBACK_FILES)
def test_parse_callback(name):
    result = make_provider().parse_callback("payment", raw_fixture(name), {"Content-Type": "application/json"})
    expected = CALLBACK_EXPECTATIONS[name]
    assert {field: getattr(result, field) for field in expected} == expected
    assert result.currency == "TZS"


@pytest.mark.parametrize(
    "body",
    [
        b"transactionstatus=success&utilityref=RHCI-DN-1",
        b'{"transactionstatus": "success", "utilityref": ',
        b"",
        b"\xff\xfe\x00garbage",
        b'[{"transactionstatus": "success", "utilityref": "RHCI-DN-1-20260101000000"}]',
        b'"success"',
        b'{"utilityref": "RHCI-DN-1-20260101000000", "reference": "abc", "amount": "5000"}',
        b'{"transactionstatus": "success", "amount": "5000"}',
        b'{"transactionstatus": "success", "utilityref": "RHCI-DN-1-20260101000000", "amount": "five"}',
        b'{"transactionstatus": "success", "utilityref": "RHCI-DN-1-20260101000000", "amount": "NaN"}',
    ],
    ids=[
        "form-encoded",
        "truncated-json",
        "empty",
        "not-utf8",
        "json-array",
        "json-string",
        "no-transactionstatus",
        "no-reference",
        "amount-not-a-number",
        "amount-nan",
    ],
)
def test_malformed_callback_bodies_raise_callback_malformed(body):
    with pytest.raises(CallbackMalformed):
        make_provider().parse_callback("payment", body, {})


# --- callbacks: authenticity ----------------------------------------------------------------------------


def auth(provider: AzamPayProvider, data) -> CallbackTrust:
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    return provider.authenticate_callback(RawCallback(kind="payment", body=body))


def test_callback_with_the_right_password_is_trusted():
    assert auth(make_provider(), fixture("callback_documented_superset.json")) == CallbackTrust.TRUSTED


def test_callback_password_key_casing_does_not_matter():
    data = fixture("callback_real_sandbox.json") | {"Password": PASSWORD}
    assert auth(make_provider(), data) == CallbackTrust.TRUSTED


@pytest.mark.parametrize("password", ["wrong-password", "", None, PASSWORD.upper(), PASSWORD + " "])
def test_callback_with_a_wrong_password_is_rejected(password):
    data = fixture("callback_documented_superset.json") | {"password": password}
    assert auth(make_provider(), data) == CallbackTrust.REJECTED


def test_callback_without_a_password_field_is_rejected_when_one_is_configured():
    assert auth(make_provider(), fixture("callback_real_sandbox.json")) == CallbackTrust.REJECTED


def test_callback_is_unverified_when_no_password_is_configured():
    provider = make_provider(callback_password="")
    assert auth(provider, fixture("callback_real_sandbox.json")) == CallbackTrust.UNVERIFIED
    assert auth(provider, fixture("callback_documented_superset.json")) == CallbackTrust.UNVERIFIED


def test_unreadable_callback_is_left_to_the_parser_not_trusted():
    assert auth(make_provider(), b"not json") == CallbackTrust.UNVERIFIED


def test_callback_with_a_valid_rsa_signature_is_trusted(rsa_key):
    provider = make_provider(callback_password="", public_key_pem=public_pem(rsa_key))
    assert auth(provider, signed_callback(rsa_key)) == CallbackTrust.TRUSTED


def test_public_key_with_escaped_newlines_from_the_environment_still_verifies(rsa_key):
    provider = make_provider(callback_password="", public_key_pem=public_pem(rsa_key).replace("\n", "\\n"))
    assert auth(provider, signed_callback(rsa_key)) == CallbackTrust.TRUSTED


def test_callback_whose_signed_fields_were_changed_is_rejected(rsa_key):
    provider = make_provider(callback_password="", public_key_pem=public_pem(rsa_key))
    data = signed_callback(rsa_key) | {"utilityref": "RHCI-DN-666-20260101000000"}
    assert auth(provider, data) == CallbackTrust.REJECTED


def test_callback_signed_by_another_key_is_rejected(rsa_key):
    provider = make_provider(callback_password="", public_key_pem=public_pem(rsa_key))
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert auth(provider, signed_callback(other)) == CallbackTrust.REJECTED


def test_callback_with_a_garbage_signature_is_rejected(rsa_key):
    provider = make_provider(callback_password="", public_key_pem=public_pem(rsa_key))
    data = fixture("callback_documented_superset.json") | {"signature": "%%%not-base64%%%"}
    assert auth(provider, data) == CallbackTrust.REJECTED


def test_unsigned_callback_is_rejected_when_a_signature_is_required(rsa_key):
    provider = make_provider(callback_password="", public_key_pem=public_pem(rsa_key), require_signature=True)
    assert auth(provider, fixture("callback_real_sandbox.json")) == CallbackTrust.REJECTED


def test_valid_signature_does_not_excuse_a_wrong_password(rsa_key):
    provider = make_provider(public_key_pem=public_pem(rsa_key))
    assert auth(provider, signed_callback(rsa_key)) == CallbackTrust.TRUSTED
    assert auth(provider, signed_callback(rsa_key, password="guess")) == CallbackTrust.REJECTED


# --- callbacks: storage and ack -----------------------------------------------------------------------


def test_redact_removes_the_callback_password_and_keeps_the_rest():
    raw = raw_fixture("callback_documented_superset.json")
    stored = make_provider().redact(raw)
    assert PASSWORD not in stored
    data = json.loads(stored)
    assert data["password"] == "***"
    assert data["utilityref"] == "DON-000123" and data["amount"] == "1000"


def test_redact_removes_the_password_whatever_its_key_casing():
    raw = json.dumps({"transactionstatus": "success", "PassWord": PASSWORD}).encode()
    assert PASSWORD not in make_provider().redact(raw)


def test_ack_is_the_body_azampay_expects():
    assert make_provider().ack("payment", True) == (200, {"success": True, "message": "Callback received"})
