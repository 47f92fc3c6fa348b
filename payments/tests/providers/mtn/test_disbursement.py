"""MTN MoMo Disbursement (payouts): the transfer we send with the Disbursement product's key and token, what
its answers mean, the transfer status GET and the transfer callback. HTTP only, no database."""

import json
from decimal import Decimal

import pytest
import requests
import responses

from payments.providers.base import CallbackMalformed, ProviderError
from payments.tests.fixtures import load_fixture
from payments.tests.providers.mtn.support import (
    DISBURSEMENT_KEY,
    DISBURSEMENT_TOKEN_URL,
    PAYOUT_REFERENCE,
    PAYOUT_REFERENCE_ID,
    SITE_URL,
    TRANSFER_URL,
    fixture,
    payout,
    raw_fixture,
    token_ok,
)

STATUS_URL = f"{TRANSFER_URL}/{PAYOUT_REFERENCE_ID}"
MANIFEST = load_fixture("mtn", "callbacks.json")
CALLBACKS = {name: entry for name, entry in MANIFEST.items() if name != "not_callbacks"}


@responses.activate
def test_transfer_headers_and_body(provider):
    token_ok(DISBURSEMENT_TOKEN_URL, "disbursement-token")
    responses.post(TRANSFER_URL, status=202)
    accepted = provider.send_payout(payout(remarks="Treatment PAT-0001 & Amani's"))
    assert accepted.provider_reference == PAYOUT_REFERENCE_ID  # the X-Reference-Id: what the status GET takes
    request = responses.calls[1].request
    assert request.headers["X-Reference-Id"] == PAYOUT_REFERENCE_ID
    assert request.headers["X-Callback-Url"] == f"{SITE_URL}/webhooks/mtn/disbursement/"
    assert request.headers["Ocp-Apim-Subscription-Key"] == DISBURSEMENT_KEY
    assert request.headers["Authorization"] == "Bearer disbursement-token"
    assert request.headers["X-Target-Environment"] == "sandbox"
    assert json.loads(request.body) == {
        "amount": "150000",
        "currency": "EUR",
        "externalId": PAYOUT_REFERENCE,
        "payee": {"partyIdType": "MSISDN", "partyId": "46733123470"},
        "payerMessage": "Treatment PAT-0001 Amanis",
        "payeeNote": "Treatment PAT-0001 Amanis",
    }


def test_payout_reference_before_request_is_a_uuid4(provider):
    assert provider.payout_reference_before_request("RHCI-PO-1")[14] == "4"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"amount": "10.5"}, "whole amounts"), ({"currency": "KES"}, "pays out EUR"), ({"msisdn": "123"}, "country")],
)
@responses.activate
def test_payouts_refused_before_sending(provider, kwargs, match):
    with pytest.raises(ProviderError, match=match):
        provider.send_payout(payout(**kwargs))
    assert len(responses.calls) == 0


@responses.activate
def test_a_transfer_timeout_is_ambiguous_never_resent(provider):
    token_ok(DISBURSEMENT_TOKEN_URL)
    responses.post(TRANSFER_URL, body=requests.ReadTimeout("slow"))
    with pytest.raises(ProviderError) as caught:
        provider.send_payout(payout())
    assert caught.value.ambiguous
    assert len([c for c in responses.calls if c.request.url == TRANSFER_URL]) == 1


@pytest.mark.parametrize(
    ("status", "body", "ambiguous"),
    [
        (500, "error_internal_processing_500.json", True),
        (500, "error_invalid_currency_500.json", False),
        (409, "error_duplicate_reference_409.json", True),
        (403, None, False),
        (400, None, False),
    ],
)
@responses.activate
def test_transfer_refusals(provider, status, body, ambiguous):
    token_ok(DISBURSEMENT_TOKEN_URL)
    if body:
        responses.post(TRANSFER_URL, status=status, json=fixture(body))
    else:
        responses.post(TRANSFER_URL, status=status)
    with pytest.raises(ProviderError) as caught:
        provider.send_payout(payout())
    assert caught.value.ambiguous is ambiguous and caught.value.status_code == status


@responses.activate
def test_transfer_status_successful(provider):
    token_ok(DISBURSEMENT_TOKEN_URL)
    responses.get(STATUS_URL, json=fixture("transfer_status_successful.json"))
    result = provider.payout_status(reference=PAYOUT_REFERENCE, provider_reference=PAYOUT_REFERENCE_ID)
    assert result.succeeded and not result.pending
    assert result.code == "SUCCESSFUL" and result.receipt == "363440463"
    assert result.our_reference == PAYOUT_REFERENCE and result.provider_reference == PAYOUT_REFERENCE_ID
    assert result.amount == Decimal("150000")
    assert responses.calls[1].request.headers["Ocp-Apim-Subscription-Key"] == DISBURSEMENT_KEY


@responses.activate
def test_transfer_status_failed(provider):
    token_ok(DISBURSEMENT_TOKEN_URL)
    responses.get(STATUS_URL, json=fixture("transfer_status_failed.json"))
    result = provider.payout_status(reference=PAYOUT_REFERENCE, provider_reference=PAYOUT_REFERENCE_ID)
    assert not result.succeeded and not result.pending
    assert result.code == "PAYEE_NOT_FOUND" and "no MTN MoMo wallet" in result.description
    assert result.receipt == ""


@pytest.mark.parametrize(
    ("status", "name"), [(200, "transfer_status_pending.json"), (404, "status_not_found_404.json")]
)
@responses.activate
def test_transfer_status_without_a_final_word_is_pending(provider, status, name):
    token_ok(DISBURSEMENT_TOKEN_URL)
    responses.get(STATUS_URL, status=status, json=fixture(name))
    result = provider.payout_status(reference=PAYOUT_REFERENCE, provider_reference=PAYOUT_REFERENCE_ID)
    assert result.pending and not result.succeeded
    assert result.our_reference == PAYOUT_REFERENCE and result.provider_reference == PAYOUT_REFERENCE_ID


@responses.activate
def test_transfer_status_we_cannot_read_is_pending(provider):
    token_ok(DISBURSEMENT_TOKEN_URL)
    responses.get(STATUS_URL, json={"amount": "1"})
    assert provider.payout_status(reference=PAYOUT_REFERENCE, provider_reference=PAYOUT_REFERENCE_ID).pending


def test_transfer_status_without_an_id_is_pending(provider):
    assert provider.payout_status(reference=PAYOUT_REFERENCE, provider_reference="").pending


@responses.activate
def test_transfer_status_5xx_is_a_provider_error(provider):
    token_ok(DISBURSEMENT_TOKEN_URL)
    responses.get(STATUS_URL, status=500)
    with pytest.raises(ProviderError):
        provider.payout_status(reference=PAYOUT_REFERENCE, provider_reference=PAYOUT_REFERENCE_ID)


@pytest.mark.parametrize(
    "name", [n for n, e in CALLBACKS.items() if e["kind"] == "disbursement" and not e.get("malformed")]
)
def test_every_transfer_callback_fixture_parses_as_the_manifest_says(provider, name):
    entry = CALLBACKS[name]
    result = provider.parse_payout_result("disbursement", raw_fixture(name))
    assert result.succeeded is (entry["status"] == "succeeded")
    assert result.our_reference == entry["our_reference"]
    assert result.provider_reference == entry["provider_reference"]
    assert result.amount == Decimal(entry["amount"])


def test_a_failed_transfer_callback_keeps_the_reason(provider):
    result = provider.parse_payout_result("disbursement", raw_fixture("callback_transfer_failed_not_enough_funds.json"))
    assert result.code == "NOT_ENOUGH_FUNDS" and "not enough money" in result.description


@pytest.mark.parametrize(
    "body",
    [
        raw_fixture("callback_transfer_malformed_no_ids.json"),
        json.dumps(fixture("transfer_status_pending.json")).encode(),  # a payout result has no "not yet"
        b"nonsense",
    ],
)
def test_malformed_transfer_callbacks(provider, body):
    with pytest.raises(CallbackMalformed):
        provider.parse_payout_result("disbursement", body)


def test_collection_kind_is_not_a_payout_result(provider):
    with pytest.raises(CallbackMalformed):
        provider.parse_payout_result("collection", raw_fixture("callback_transfer_successful.json"))
