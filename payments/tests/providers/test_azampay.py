"""AzamPay adapter: HTTP and translation only, no database. The far side of the network is `responses`.

Payload shapes come from the provider facts (docs/providers/azampay.md) and live in
tests/fixtures/azampay/*.json.
"""

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import responses
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.core.cache import cache
from responses import matchers

from payments.providers.azampay.codes import status_from_text
from payments.providers.azampay.provider import AzamPayProvider
from payments.providers.base import (
    CallbackMalformed,
    CallbackTrust,
    ChargeRequest,
    PaymentRef,
    PaymentStatus,
    ProviderError,
    RawCallback,
)
from payments.providers.registry import get_provider

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "azampay"
AUTH = "https://authenticator-sandbox.azampay.co.tz"
API = "https://sandbox.azampay.co.tz"
TOKEN_URL = f"{AUTH}/AppRegistration/GenerateToken"
MNO_URL = f"{API}/azampay/mno/checkout"
BANK_URL = f"{API}/azampay/bank/checkout"
POST_CHECKOUT_URL = f"{API}/api/v1/Partner/PostCheckout"
STATUS_URL = f"{API}/azampay/gettransactionstatus"
PASSWORD = "test-callback-password"
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


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


def raw_fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


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


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()  # the access token lives in the cache
    yield
    cache.clear()


@pytest.fixture
def azam():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def with_token(azam):
    return azam.post(TOKEN_URL, json=token_payload())


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


# --- settings -------------------------------------------------------------------------------------------


def test_the_configured_provider_talks_to_the_azampay_sandbox_hosts():
    provider = get_provider("azampay")
    assert provider.client.auth.base_url == AUTH
    assert provider.client.api.base_url == API
    assert provider.callback_auth.password == PASSWORD


# --- token ----------------------------------------------------------------------------------------------


def test_token_is_fetched_once_and_cached_for_every_instance(azam):
    token = azam.post(TOKEN_URL, json=token_payload(token="cached-token"))
    assert make_provider().access_token() == "cached-token"
    assert make_provider().access_token() == "cached-token"
    assert token.call_count == 1
    assert json.loads(azam.calls[0].request.body) == {
        "appName": KWARGS["app_name"],
        "clientId": KWARGS["client_id"],
        "clientSecret": KWARGS["client_secret"],
    }


def test_token_is_fetched_again_once_its_expiry_has_passed(azam, monkeypatch):
    expire = datetime.now(UTC) + timedelta(hours=1)
    azam.post(TOKEN_URL, json=token_payload(token="first", expire=expire))
    azam.post(TOKEN_URL, json=token_payload(token="second", expire=expire + timedelta(hours=1)))
    provider = make_provider()
    assert provider.access_token() == "first"
    assert provider.access_token() == "first"

    an_hour_later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: an_hour_later)  # the cache measures expiry with time.time()
    assert provider.access_token() == "second"
    assert len(calls_to(azam, TOKEN_URL)) == 2


def test_token_is_refreshed_a_margin_before_it_expires(azam, monkeypatch):
    expire = datetime.now(UTC) + timedelta(minutes=10)
    azam.post(TOKEN_URL, json=token_payload(token="first", expire=expire))
    azam.post(TOKEN_URL, json=token_payload(token="second", expire=expire + timedelta(hours=1)))
    provider = make_provider()
    assert provider.access_token() == "first"
    thirty_seconds_before_expiry = time.time() + 570
    monkeypatch.setattr(time, "time", lambda: thirty_seconds_before_expiry)
    assert provider.access_token() == "second"


def test_token_that_arrives_already_expired_is_not_reused(azam):
    azam.post(TOKEN_URL, json=token_payload(token="stale", expire=datetime.now(UTC) - timedelta(minutes=5)))
    azam.post(TOKEN_URL, json=token_payload(token="fresh", expire=datetime.now(UTC) + timedelta(hours=1)))
    provider = make_provider()
    assert provider.access_token() == "stale"
    assert provider.access_token() == "fresh"


def test_token_refused_with_423_is_a_provider_error(azam):
    azam.post(TOKEN_URL, status=423, json=fixture("token_failure_423.json"))
    with pytest.raises(ProviderError) as excinfo:
        make_provider().access_token()
    assert excinfo.value.status_code == 423
    assert "credentials" in excinfo.value.message
    assert cache.get(make_provider().tokens.key) is None


def test_a_refused_token_stops_the_charge_before_any_checkout_call(azam):
    azam.post(TOKEN_URL, status=423, json=fixture("token_failure_423.json"))
    checkout = azam.post(MNO_URL, json=fixture("mno_checkout_success.json"))
    with pytest.raises(ProviderError):
        make_provider().start_charge(mno_charge())
    assert checkout.call_count == 0


# --- MNO checkout ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "sent"),
    [
        ("Mpesa", "Mpesa"),
        ("mpesa", "Mpesa"),
        ("AIRTEL", "Airtel"),
        ("tigo", "Tigo"),
        ("Mixx", "Tigo"),
        ("Halotel", "Halopesa"),
        ("azampesa", "Azampesa"),
    ],
)
def test_mno_checkout_body_is_exactly_what_azampay_wants(azam, with_token, typed, sent):
    checkout = azam.post(MNO_URL, json=fixture("mno_checkout_success.json"))
    result = make_provider().start_charge(mno_charge(channel=typed))

    request = checkout.calls[0].request
    body = json.loads(request.body)
    assert {k: body[k] for k in ("accountNumber", "amount", "currency", "externalId", "provider")} == {
        "accountNumber": "255712345678",
        "amount": "5000",  # a string holding a whole number, not "5000.00"
        "currency": "TZS",
        "externalId": REFERENCE,
        "provider": sent,  # AzamPay's enum is case-sensitive
    }
    assert request.headers["Authorization"] == "Bearer test-token"
    assert "X-API-Key" not in request.headers
    assert result.status == PaymentStatus.PENDING
    assert result.provider_reference == TRANSACTION_ID
    assert result.our_reference == REFERENCE


def test_api_key_is_sent_on_token_and_checkout_only_when_configured(azam, with_token):
    checkout = azam.post(MNO_URL, json=fixture("mno_checkout_success.json"))
    make_provider(api_key="dashboard-api-key").start_charge(mno_charge())
    assert with_token.calls[0].request.headers["X-API-Key"] == "dashboard-api-key"
    assert checkout.calls[0].request.headers["X-API-Key"] == "dashboard-api-key"


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"currency": "KES"}, "TZS"),
        ({"amount": Decimal("5000.50")}, "whole"),
        ({"channel": "Vodafone"}, "channel"),
    ],
)
def test_charges_azampay_cannot_take_are_refused_before_any_http_call(azam, overrides, why):
    with pytest.raises(ProviderError, match=why):
        make_provider().start_charge(mno_charge(**overrides))
    assert len(azam.calls) == 0


def test_checkout_answered_success_false_is_a_provider_error_with_azampays_words(azam, with_token):
    azam.post(MNO_URL, json=fixture("mno_checkout_invalid_vendor.json"))
    with pytest.raises(ProviderError) as excinfo:
        make_provider().start_charge(mno_charge())
    assert "Invalid Vendor" in excinfo.value.message
    assert not excinfo.value.retryable


def test_checkout_400_problem_details_is_a_provider_error_naming_the_fields(azam, with_token):
    azam.post(MNO_URL, status=400, json=fixture("checkout_problem_details_400.json"))
    with pytest.raises(ProviderError) as excinfo:
        make_provider().start_charge(mno_charge())
    assert excinfo.value.status_code == 400
    assert "accountNumber" in excinfo.value.message and "amount" in excinfo.value.message


def test_checkout_post_is_not_retried_on_503(azam, with_token):
    azam.post(MNO_URL, status=503, body="Service Unavailable")
    with pytest.raises(ProviderError) as excinfo:
        make_provider().start_charge(mno_charge())
    assert excinfo.value.status_code == 503
    assert len(calls_to(azam, MNO_URL)) == 1


@pytest.mark.parametrize(
    ("error", "retryable_words"),
    [(requests.ConnectionError("connection refused"), "reached"), (requests.ReadTimeout("slow"), "in time")],
)
def test_checkout_post_is_not_retried_when_the_network_fails(azam, with_token, error, retryable_words):
    azam.post(MNO_URL, body=error)
    with pytest.raises(ProviderError, match=retryable_words) as excinfo:
        make_provider().start_charge(mno_charge())
    assert excinfo.value.retryable
    assert len(calls_to(azam, MNO_URL)) == 1


# --- hosted (card) and bank checkout ------------------------------------------------------------------


@pytest.mark.parametrize("quoted", [False, True], ids=["plain-text", "json-quoted"])
def test_card_checkout_returns_the_page_url_azampay_answers(azam, with_token, quoted):
    url = fixture("post_checkout_url.json")
    body = raw_fixture("post_checkout_url.json").decode() if quoted else url
    page = azam.post(POST_CHECKOUT_URL, body=body, content_type="text/plain")
    charge = mno_charge(
        channel="card",
        msisdn="",
        success_url="https://donate.example.org/donations/X/?return=success",
        failure_url="https://donate.example.org/donations/X/?return=failed",
    )
    result = make_provider().start_charge(charge)

    assert result.checkout_url == url
    assert result.status == PaymentStatus.PENDING
    sent = json.loads(page.calls[0].request.body)
    assert sent["externalId"] == REFERENCE[:30]
    assert sent["amount"] == "5000"
    assert sent["requestOrigin"] == "https://donate.example.org"
    assert sent["redirectSuccessURL"] == charge.success_url
    assert sent["vendorId"] == KWARGS["vendor_id"]


def test_card_checkout_without_a_url_in_the_answer_is_a_provider_error(azam, with_token):
    azam.post(POST_CHECKOUT_URL, status=200, body="Invalid request", content_type="text/plain")
    with pytest.raises(ProviderError):
        make_provider().start_charge(mno_charge(channel="card"))


def test_bank_checkout_sends_bank_field_names_and_reads_msg_and_reference_id(azam, with_token):
    bank = azam.post(BANK_URL, json=fixture("bank_checkout_success.json"))
    charge = mno_charge(channel="bank", extra={"bank": "crdb", "account_number": "0150111222333", "otp": "1234"})
    result = make_provider().start_charge(charge)

    sent = json.loads(bank.calls[0].request.body)
    assert sent["currencyCode"] == "TZS" and "currency" not in sent
    assert sent["referenceId"] == REFERENCE
    assert sent["provider"] == "CRDB"
    assert sent["merchantAccountNumber"] == "0150111222333"
    assert sent["merchantMobileNumber"] == "255712345678"
    assert sent["amount"] == "5000"
    assert result.provider_reference == "9c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5"
    assert result.message == "Transaction is being processed"


def test_bank_checkout_also_reads_the_transaction_id_shape(azam, with_token):
    azam.post(BANK_URL, json={"transactionId": "abc123", "message": "Processing"})
    result = make_provider().start_charge(mno_charge(channel="bank", extra={"bank": "NMB"}))
    assert result.provider_reference == "abc123"
    assert result.message == "Processing"


def test_bank_checkout_without_a_known_bank_is_refused_before_any_http_call(azam):
    with pytest.raises(ProviderError, match="CRDB or NMB"):
        make_provider().start_charge(mno_charge(channel="bank", extra={"bank": "Barclays"}))
    assert len(azam.calls) == 0


# --- status query ---------------------------------------------------------------------------------------


def status_ref(**overrides) -> PaymentRef:
    return PaymentRef(**{"reference": REFERENCE, "provider_reference": TRANSACTION_ID, "channel": "Mpesa", **overrides})


@pytest.mark.parametrize("name", ["status_success.json", "status_success_array.json"])
def test_status_query_reads_successful_transactions(azam, with_token, name):
    status = azam.get(
        STATUS_URL,
        json=fixture(name),
        match=[matchers.query_param_matcher({"pgReferenceId": TRANSACTION_ID, "bankName": "Mpesa"})],
    )
    result = make_provider().fetch_status(status_ref())
    assert result.status == PaymentStatus.SUCCEEDED
    assert result.provider_reference == TRANSACTION_ID
    assert result.our_reference == REFERENCE
    assert status.calls[0].request.headers["Authorization"] == "Bearer test-token"


def test_status_query_reads_failed_transactions(azam, with_token):
    azam.get(STATUS_URL, json=fixture("status_failed.json"))
    assert make_provider().fetch_status(status_ref()).status == PaymentStatus.FAILED


def test_status_query_answer_without_a_status_is_unknown_never_failed(azam, with_token):
    azam.get(STATUS_URL, json=fixture("status_unauthorized.json"))
    assert make_provider().fetch_status(status_ref()).status == PaymentStatus.UNKNOWN


def test_status_query_without_an_azampay_id_is_unknown_and_asks_nothing(azam):
    result = make_provider().fetch_status(status_ref(provider_reference=""))
    assert result.status == PaymentStatus.UNKNOWN
    assert len(azam.calls) == 0


def test_status_get_is_retried_on_503(azam, with_token):
    azam.get(STATUS_URL, status=503)
    azam.get(STATUS_URL, status=503)
    azam.get(STATUS_URL, json=fixture("status_success.json"))
    assert make_provider().fetch_status(status_ref()).status == PaymentStatus.SUCCEEDED
    assert len(calls_to(azam, STATUS_URL)) == 3


def test_status_get_retries_are_bounded(azam, with_token):
    azam.get(STATUS_URL, status=503)
    with pytest.raises(ProviderError) as excinfo:
        make_provider().fetch_status(status_ref())
    assert excinfo.value.retryable
    assert len(calls_to(azam, STATUS_URL)) == 3  # the first try and two retries


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


# --- status words -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("Transaction successful.", PaymentStatus.SUCCEEDED),
        ("success", PaymentStatus.SUCCEEDED),
        ("Transaction failed.", PaymentStatus.FAILED),
        ("Transaction rejected by operator", PaymentStatus.FAILED),
        ("Insufficient funds", PaymentStatus.FAILED),
        ("Transaction pending.", PaymentStatus.PENDING),
        ("Transaction in progress", PaymentStatus.PENDING),
        ("Transaction timeout", PaymentStatus.EXPIRED),
        ("Transaction failed: timed out", PaymentStatus.EXPIRED),
        ("Cancelled by user", PaymentStatus.CANCELLED),
        ("Please Provide Valid Authorization", PaymentStatus.UNKNOWN),
        ("garbage", PaymentStatus.UNKNOWN),
        ("", PaymentStatus.UNKNOWN),
    ],
)
def test_status_text_mapping(text, status):
    assert status_from_text(text) == status


@pytest.mark.parametrize("text", ["Transaction unsuccessful.", "Transaction was not successful"])
def test_status_text_that_negates_success_is_never_success(azam, with_token, text):
    assert status_from_text(text) != PaymentStatus.SUCCEEDED
    azam.get(STATUS_URL, json={"data": text, "message": "Request successful.", "success": True, "statusCode": 200})
    assert make_provider().fetch_status(status_ref()).status != PaymentStatus.SUCCEEDED


def test_status_answer_without_a_transaction_status_is_not_a_success(azam, with_token):
    azam.get(STATUS_URL, json={"data": None, "message": "Request successful.", "success": True, "statusCode": 200})
    assert make_provider().fetch_status(status_ref()).status != PaymentStatus.SUCCEEDED
