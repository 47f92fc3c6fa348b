"""Payouts (disbursements): the encrypted PIN (decrypted here with the test key), our id, the synchronous
answer, ambiguity (never re-sent) and the disbursement enquiry."""

import base64
from decimal import Decimal

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding

from payments.providers.base import ProviderError
from payments.tests.providers.airtel.support import (
    DISBURSEMENT_ENQUIRY_URL,
    DISBURSEMENT_URL,
    KEYS_URL,
    PAYOUT_ID,
    PAYOUT_REFERENCE,
    PIN,
    calls_to,
    fixture,
    make_provider,
    payout,
    private_key,
    public_der_b64,
    public_pem,
    raw_fixture,
    sent_json,
)


def payouts_provider(**overrides):
    return make_provider(**{"disbursement_pin": PIN, "public_key_pem": public_pem(), **overrides})


# --- sending a payout -----------------------------------------------------------------------------------


def test_the_disbursement_body_and_the_pin_airtel_can_decrypt(airtel, with_token):
    airtel.post(DISBURSEMENT_URL, json=fixture("disbursement_success.json"))
    accepted = payouts_provider().send_payout(payout())
    call = calls_to(airtel, DISBURSEMENT_URL)[0]
    body = sent_json(call)
    pin = body.pop("pin")
    assert body == {
        "payee": {"msisdn": "700160185"},
        "reference": PAYOUT_ID,
        "transaction": {"amount": 1000, "id": PAYOUT_ID},
    }
    assert private_key().decrypt(base64.b64decode(pin), rsa_padding.PKCS1v15()) == PIN.encode()
    assert (call.request.headers["X-Country"], call.request.headers["X-Currency"]) == ("UG", "UGX")
    assert accepted.provider_reference == PAYOUT_ID
    assert "balance" not in accepted.message  # the wallet's balance stays out of our records


def test_the_pin_with_oaep(airtel, with_token):
    airtel.post(DISBURSEMENT_URL, json=fixture("disbursement_success.json"))
    payouts_provider(pin_padding="oaep").send_payout(payout())
    pin = base64.b64decode(sent_json(calls_to(airtel, DISBURSEMENT_URL)[0])["pin"])
    oaep = rsa_padding.OAEP(mgf=rsa_padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303
    assert private_key().decrypt(pin, oaep) == PIN.encode()


def test_the_pin_with_airtels_fetched_key_when_none_is_configured(airtel, with_token):
    airtel.get(KEYS_URL, json={**fixture("encryption_keys.json"), "data": {"key": public_der_b64()}})
    airtel.post(DISBURSEMENT_URL, json=fixture("disbursement_success.json"))
    payouts_provider(public_key_pem="").send_payout(payout())
    pin = base64.b64decode(sent_json(calls_to(airtel, DISBURSEMENT_URL)[0])["pin"])
    assert private_key().decrypt(pin, rsa_padding.PKCS1v15()) == PIN.encode()


def test_an_id_chosen_before_the_request_is_used(airtel, with_token):
    airtel.post(DISBURSEMENT_URL, json=fixture("disbursement_success.json"))
    accepted = payouts_provider().send_payout(payout(provider_reference="abc123XYZ"))
    assert sent_json(calls_to(airtel, DISBURSEMENT_URL)[0])["transaction"]["id"] == "abc123XYZ"
    assert accepted.provider_reference == "abc123XYZ"


def test_processing_is_accepted(airtel, with_token):
    airtel.post(DISBURSEMENT_URL, json=fixture("disbursement_processing.json"))
    assert payouts_provider().send_payout(payout()).provider_reference == PAYOUT_ID


@pytest.mark.parametrize(
    ("overrides", "provider_overrides", "message"),
    [
        ({"amount": Decimal("10.5")}, {}, "whole amounts"),
        ({"currency": "KES"}, {}, "pays UGX only"),
        ({}, {"disbursement_pin": ""}, "AIRTEL_DISBURSEMENT_PIN"),
        ({"msisdn": "254712345678"}, {}, "mobile number of UG"),
    ],
)
def test_refused_before_anything_is_sent(airtel, overrides, provider_overrides, message):
    with pytest.raises(ProviderError, match=message) as raised:
        payouts_provider(**provider_overrides).send_payout(payout(**overrides))
    assert not raised.value.ambiguous
    assert not airtel.calls


def test_insufficient_funds_is_a_refusal(airtel, with_token):
    airtel.post(DISBURSEMENT_URL, json=fixture("disbursement_insufficient_funds.json"))
    with pytest.raises(ProviderError, match="Not enough funds") as raised:
        payouts_provider().send_payout(payout())
    assert raised.value.ambiguous is False


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (200, "disbursement_ambiguous.json"),
        (200, "disbursement_duplicate.json"),  # one with this id exists: it may be ours, paid
        (500, None),
        (408, "push_connection_timeout_408.json"),
    ],
)
def test_answers_after_which_money_may_have_moved_are_ambiguous(airtel, with_token, status, name):
    if name:
        airtel.post(DISBURSEMENT_URL, status=status, json=fixture(name))
    else:
        airtel.post(DISBURSEMENT_URL, status=status, body="Internal Server Error")
    with pytest.raises(ProviderError) as raised:
        payouts_provider().send_payout(payout())
    assert raised.value.ambiguous is True
    assert len(calls_to(airtel, DISBURSEMENT_URL)) == 1


def test_a_timeout_is_ambiguous_and_never_resent(airtel, with_token):
    airtel.post(DISBURSEMENT_URL, body=requests.ReadTimeout("read timed out"))
    with pytest.raises(ProviderError) as raised:
        payouts_provider().send_payout(payout())
    assert raised.value.ambiguous is True
    assert len(calls_to(airtel, DISBURSEMENT_URL)) == 1


# --- asking about a payout ------------------------------------------------------------------------------


def test_payout_status_paid(airtel, with_token):
    airtel.get(DISBURSEMENT_ENQUIRY_URL, json=fixture("disbursement_enquiry_success.json"))
    result = payouts_provider().payout_status(reference=PAYOUT_REFERENCE, provider_reference="")
    assert result is not None and result.succeeded and not result.pending
    assert result.our_reference == PAYOUT_REFERENCE and result.provider_reference == PAYOUT_ID
    assert result.receipt == "partner-ABCD07026984141" and result.code == "DP00900001001"


def test_payout_status_by_the_id_we_stored(airtel, with_token):
    url = DISBURSEMENT_ENQUIRY_URL.replace(PAYOUT_ID, "abc123XYZ")
    airtel.get(url, json=fixture("disbursement_enquiry_failed.json"))
    result = payouts_provider().payout_status(reference=PAYOUT_REFERENCE, provider_reference="abc123XYZ")
    assert result is not None and not result.succeeded and not result.pending
    assert result.code == "DP00900001007"


@pytest.mark.parametrize("name", ["disbursement_enquiry_in_progress.json", "enquiry_not_found.json"])
def test_payout_status_not_decided_is_pending(airtel, with_token, name):
    airtel.get(DISBURSEMENT_ENQUIRY_URL, json=fixture(name))
    result = payouts_provider().payout_status(reference=PAYOUT_REFERENCE, provider_reference="")
    assert result is not None and result.pending


def test_payout_status_unanswered_is_an_error(airtel, with_token):
    airtel.get(DISBURSEMENT_ENQUIRY_URL, status=503, body="busy")
    with pytest.raises(ProviderError):
        payouts_provider().payout_status(reference=PAYOUT_REFERENCE, provider_reference="")


def test_a_disbursement_result_delivered_to_our_path():
    result = payouts_provider().parse_payout_result("disbursement", raw_fixture("disbursement_enquiry_success.json"))
    assert result.succeeded and result.provider_reference == "ABCD07026984141"
    result = payouts_provider().parse_payout_result("disbursement", raw_fixture("callback_failure.json"))
    assert not result.succeeded and not result.pending
    result = payouts_provider().parse_payout_result("disbursement", raw_fixture("callback_intermediate.json"))
    assert result.pending
