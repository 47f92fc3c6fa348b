"""The USSD push and the transaction enquiry: paths (v1/v2) and signing as two switches, the routing headers,
the MSISDN without its country code, "SUCCESS" as pending, refusals, ambiguity, and the enquiry's states read
from `data.transaction.status` (the envelope's `success` ignored)."""

import base64
import json
from decimal import Decimal

import pytest
import requests
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from payments.providers.base import PaymentStatus, ProviderError
from payments.tests.providers.airtel.support import (
    AIRTEL_ID,
    API,
    ENQUIRY_URL,
    KEYS_URL,
    PUSH_V1_URL,
    PUSH_V2_URL,
    TOKEN_URL,
    calls_to,
    charge,
    fixture,
    make_provider,
    private_key,
    public_der_b64,
    public_pem,
    ref,
    sent_json,
)

# --- the push -------------------------------------------------------------------------------------------


def test_push_body_and_headers(airtel, with_token):
    airtel.post(PUSH_V1_URL, json=fixture("push_accepted.json"))
    result = make_provider().start_charge(charge())
    call = calls_to(airtel, PUSH_V1_URL)[0]
    assert sent_json(call) == {
        "reference": AIRTEL_ID,
        "subscriber": {"country": "UG", "currency": "UGX", "msisdn": "712345678"},
        "transaction": {"amount": 5000, "country": "UG", "currency": "UGX", "id": AIRTEL_ID},
    }
    headers = call.request.headers
    assert headers["X-Country"] == "UG" and headers["X-Currency"] == "UGX"
    assert headers["Authorization"] == "Bearer DHeopO4IXBaAGUcZpXgymyfSkFtjvHJz"
    assert headers["Content-Type"] == "application/json"
    assert "x-signature" not in headers and "x-key" not in headers
    assert result.status == PaymentStatus.PENDING  # "SUCCESS" only means the prompt was queued
    assert result.our_reference == AIRTEL_ID
    assert result.provider_reference == ""  # Airtel's own id comes with the success
    assert (result.amount, result.currency) == (Decimal("5000"), "UGX")


def test_country_and_currency_come_from_the_settings(airtel, with_token):
    push_url = PUSH_V1_URL
    airtel.post(push_url, json=fixture("push_accepted.json"))
    provider = make_provider(country="ZM", currency="ZMW")
    provider.start_charge(charge(currency="ZMW", msisdn="260971234567"))
    call = calls_to(airtel, push_url)[0]
    assert (call.request.headers["X-Country"], call.request.headers["X-Currency"]) == ("ZM", "ZMW")
    assert sent_json(call)["subscriber"] == {"country": "ZM", "currency": "ZMW", "msisdn": "971234567"}
    assert provider.currencies == frozenset({"ZMW"})


def test_the_v2_path_without_signing(airtel, with_token):
    airtel.post(PUSH_V2_URL, json=fixture("push_accepted.json"))
    make_provider(collection_path="/merchant/v2/payments/").start_charge(charge())
    headers = calls_to(airtel, PUSH_V2_URL)[0].request.headers
    assert "x-signature" not in headers and "x-key" not in headers


@pytest.mark.parametrize("url", [PUSH_V1_URL, PUSH_V2_URL])
def test_signing_is_a_separate_switch_and_signs_the_bytes_sent(airtel, with_token, url):
    airtel.post(url, json=fixture("push_accepted.json"))
    path = url.removeprefix(API)
    make_provider(collection_path=path, sign_requests=True, public_key_pem=public_pem()).start_charge(charge())
    call = calls_to(airtel, url)[0]
    secret = private_key().decrypt(base64.b64decode(call.request.headers["x-key"]), rsa_padding.PKCS1v15())
    aes_key, _, iv = (base64.b64decode(part) for part in secret.decode().partition(":"))
    decryptor = Cipher(algorithms.AES(aes_key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(base64.b64decode(call.request.headers["x-signature"])) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    assert unpadder.update(padded) + unpadder.finalize() == call.request.body


def test_signing_without_a_configured_key_fetches_airtels(airtel, with_token):
    airtel.get(KEYS_URL, json={**fixture("encryption_keys.json"), "data": {"key": public_der_b64()}})
    airtel.post(PUSH_V2_URL, json=fixture("push_accepted.json"))
    make_provider(collection_path="/merchant/v2/payments/", sign_requests=True).start_charge(charge())
    assert "x-key" in calls_to(airtel, PUSH_V2_URL)[0].request.headers


def test_the_docs_answer_with_id_false_is_still_accepted(airtel, with_token):
    airtel.post(PUSH_V1_URL, json=fixture("push_accepted_id_false.json"))
    assert make_provider().start_charge(charge()).status == PaymentStatus.PENDING


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"currency": "KES"}, "collects UGX only"),
        ({"amount": Decimal("5000.50")}, "whole amounts only"),
        ({"amount": Decimal("0")}, "whole amounts only"),
        ({"msisdn": "254712345678"}, "mobile number of UG"),
    ],
)
def test_refused_before_anything_is_sent(airtel, overrides, message):
    with pytest.raises(ProviderError, match=message) as raised:
        make_provider().start_charge(charge(**overrides))
    assert raised.value.status_code == 400 and not raised.value.ambiguous
    assert not airtel.calls


@pytest.mark.parametrize(
    ("status", "name", "message"),
    [
        (200, "push_duplicate_id.json", "External Transaction ID already exists"),
        (200, "push_invalid_msisdn.json", "Invalid Msisdn Length"),
        (400, "push_missing_country_router110.json", "ROUTER110"),
        (200, "push_signature_forbidden.json", "X-signature and payload did not match"),
    ],
)
def test_refusals_are_provider_errors_not_ambiguous(airtel, with_token, status, name, message):
    airtel.post(PUSH_V1_URL, status=status, json=fixture(name))
    with pytest.raises(ProviderError, match=message) as raised:
        make_provider().start_charge(charge())
    assert raised.value.ambiguous is False


def test_a_refused_token_on_the_push_is_dropped_not_resent(airtel, with_token):
    airtel.post(PUSH_V1_URL, status=401, json=fixture("token_invalid_token.json"))
    provider = make_provider()
    with pytest.raises(ProviderError) as raised:
        provider.start_charge(charge())
    assert not raised.value.ambiguous and raised.value.retryable
    assert len(calls_to(airtel, PUSH_V1_URL)) == 1  # a money-moving POST is never sent twice
    airtel.post(PUSH_V1_URL, json=fixture("push_accepted.json"))
    provider.start_charge(charge())
    assert len(calls_to(airtel, TOKEN_URL)) == 2  # the refused token was dropped


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (408, fixture("push_connection_timeout_408.json")),
        (500, {"status_message": "Internal error"}),
        (503, None),
        (200, fixture("push_ambiguous.json")),
        (200, None),  # an answer we cannot read
    ],
)
def test_answers_after_which_the_prompt_may_have_gone_are_ambiguous(airtel, with_token, status, body):
    if body is None:
        airtel.post(PUSH_V1_URL, status=status, body="<html>gateway</html>")
    else:
        airtel.post(PUSH_V1_URL, status=status, json=body)
    with pytest.raises(ProviderError) as raised:
        make_provider().start_charge(charge())
    assert raised.value.ambiguous is True
    assert len(calls_to(airtel, PUSH_V1_URL)) == 1


def test_a_timeout_after_sending_is_ambiguous(airtel, with_token):
    airtel.post(PUSH_V1_URL, body=requests.ReadTimeout("read timed out"))
    with pytest.raises(ProviderError, match="did not answer in time") as raised:
        make_provider().start_charge(charge())
    assert raised.value.ambiguous is True


def test_a_connection_never_made_is_not_ambiguous(airtel, with_token):
    airtel.post(PUSH_V1_URL, body=requests.ConnectTimeout("connect timed out"))
    with pytest.raises(ProviderError) as raised:
        make_provider().start_charge(charge())
    assert raised.value.ambiguous is False


# --- the enquiry ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("enquiry_success.json", PaymentStatus.SUCCEEDED),
        ("enquiry_success_envelope_false.json", PaymentStatus.SUCCEEDED),  # status.success: false on a TS
        ("enquiry_success_numeric_code.json", PaymentStatus.SUCCEEDED),
        ("enquiry_failed_insufficient.json", PaymentStatus.FAILED),
        ("enquiry_failed_pin_not_entered.json", PaymentStatus.EXPIRED),
        ("enquiry_ambiguous.json", PaymentStatus.PENDING),
        ("enquiry_in_progress.json", PaymentStatus.PENDING),
        ("enquiry_ti.json", PaymentStatus.PENDING),  # seen in production
        ("enquiry_tu.json", PaymentStatus.UNKNOWN),
        ("enquiry_not_found.json", PaymentStatus.UNKNOWN),
    ],
)
def test_enquiry_states(airtel, with_token, name, status):
    airtel.get(ENQUIRY_URL, json=fixture(name))
    assert make_provider().fetch_status(ref()).status == status


def test_a_success_carries_airtels_id_as_receipt_and_reference(airtel, with_token):
    airtel.get(ENQUIRY_URL, json=fixture("enquiry_success_envelope_false.json"))
    result = make_provider().fetch_status(ref())
    assert result.receipt == result.provider_reference == "C3648.00993.538XX.XX67"
    # Asked by our id (the path): that binds the answer; our reference is not filled in from the question.
    assert result.our_reference == "" and result.amount is None
    headers = calls_to(airtel, ENQUIRY_URL)[0].request.headers
    assert (headers["X-Country"], headers["X-Currency"]) == ("UG", "UGX")


def test_the_envelope_success_flag_never_decides(airtel, with_token):
    body = fixture("enquiry_failed_insufficient.json")
    body["status"]["success"] = True
    airtel.get(ENQUIRY_URL, json=body)
    assert make_provider().fetch_status(ref()).status == PaymentStatus.FAILED
    body = fixture("enquiry_in_progress.json")
    body["status"].update({"success": True, "response_code": "DP00800001001"})
    airtel.get(ENQUIRY_URL, json=body)
    assert make_provider().fetch_status(ref()).status == PaymentStatus.PENDING


def test_a_failure_carries_airtels_words_and_code(airtel, with_token):
    airtel.get(ENQUIRY_URL, json=fixture("enquiry_failed_insufficient.json"))
    result = make_provider().fetch_status(ref())
    assert "Not enough balance" in result.message and "DP00800001007" in result.message
    assert result.receipt == ""


def test_a_cancellation_in_words_is_cancelled(airtel, with_token):
    body = fixture("enquiry_failed_insufficient.json")
    body["data"]["transaction"]["message"] = "The payer cancelled the transaction."
    body["status"]["response_code"] = "DP00800001008"
    airtel.get(ENQUIRY_URL, json=body)
    assert make_provider().fetch_status(ref()).status == PaymentStatus.CANCELLED


def test_the_enquiry_asks_by_the_id_the_push_sent(airtel, with_token):
    """The services give fetch_status our reference: the id is derived again, as the push derived it."""
    airtel.post(PUSH_V1_URL, json=fixture("push_accepted.json"))
    airtel.get(ENQUIRY_URL, json=fixture("enquiry_in_progress.json"))
    provider = make_provider()
    provider.start_charge(charge())
    provider.fetch_status(ref())
    sent_id = sent_json(calls_to(airtel, PUSH_V1_URL)[0])["transaction"]["id"]
    assert calls_to(airtel, ENQUIRY_URL)[0].request.url == f"{API}/standard/v1/payments/{sent_id}"


@pytest.mark.parametrize("status", [500, 502, 408])
def test_an_enquiry_airtel_cannot_answer_is_a_retryable_error(airtel, with_token, status):
    airtel.get(ENQUIRY_URL, status=status, json={"status_message": "I/O Exception"})
    with pytest.raises(ProviderError) as raised:
        make_provider().fetch_status(ref())
    assert raised.value.retryable


def test_an_enquiry_refused_by_the_gateway_is_an_error(airtel, with_token):
    airtel.get(ENQUIRY_URL, status=400, json=fixture("push_missing_country_router110.json"))
    with pytest.raises(ProviderError, match="ROUTER110"):
        make_provider().fetch_status(ref())


def test_an_enquiry_without_a_state_is_unknown(airtel, with_token):
    airtel.get(ENQUIRY_URL, json={"status": {"code": "200", "success": True}})
    assert make_provider().fetch_status(ref()).status == PaymentStatus.UNKNOWN


def test_the_push_body_is_compact_json(airtel, with_token):
    airtel.post(PUSH_V1_URL, json=fixture("push_accepted.json"))
    make_provider().start_charge(charge())
    body = calls_to(airtel, PUSH_V1_URL)[0].request.body
    assert body == json.dumps(json.loads(body), separators=(",", ":")).encode()
