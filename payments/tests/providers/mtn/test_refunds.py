"""MTN MoMo refunds: the refund we send (naming the payment's X-Reference-Id, partial amounts allowed), its
status GET and its callback. HTTP only, no database."""

import json

import pytest
import requests
import responses

from payments.providers.base import CallbackMalformed, PaymentStatus, ProviderError
from payments.tests.fixtures import load_fixture
from payments.tests.providers.mtn.support import (
    DISBURSEMENT_KEY,
    DISBURSEMENT_TOKEN_URL,
    REFUND_REFERENCE,
    REFUND_REFERENCE_ID,
    REFUND_URL,
    SITE_URL,
    X_REFERENCE_ID,
    fixture,
    raw_fixture,
    refund,
    token_ok,
)

STATUS_URL = f"{REFUND_URL}/{REFUND_REFERENCE_ID}"
MANIFEST = load_fixture("mtn", "callbacks.json")
CALLBACKS = {name: entry for name, entry in MANIFEST.items() if name != "not_callbacks"}


def test_partial_refunds_are_allowed(provider):
    assert provider.refunds_partial is True
    assert provider.refund_reference_before_request()[14] == "4"


@responses.activate
def test_refund_headers_and_body(provider):
    token_ok(DISBURSEMENT_TOKEN_URL)
    responses.post(REFUND_URL, status=202)
    accepted = provider.send_refund(refund())
    assert accepted.provider_reference == REFUND_REFERENCE_ID
    request = responses.calls[1].request
    assert request.headers["X-Reference-Id"] == REFUND_REFERENCE_ID
    assert request.headers["X-Callback-Url"] == f"{SITE_URL}/webhooks/mtn/refund/rtok/"
    assert request.headers["Ocp-Apim-Subscription-Key"] == DISBURSEMENT_KEY
    assert json.loads(request.body) == {
        "amount": "20000",
        "currency": "EUR",
        "externalId": REFUND_REFERENCE,
        "payerMessage": "Donors request refund",
        "payeeNote": "Donors request refund",
        "referenceIdToRefund": X_REFERENCE_ID,
    }


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"payment_reference": "ws_CO_123"}, "X-Reference-Id"),
        ({"amount": "1.5"}, "whole amounts"),
        ({"currency": "UGX"}, "refunds EUR"),
    ],
)
@responses.activate
def test_refunds_refused_before_sending(provider, kwargs, match):
    with pytest.raises(ProviderError, match=match):
        provider.send_refund(refund(**kwargs))
    assert len(responses.calls) == 0


@responses.activate
def test_a_refund_timeout_is_ambiguous(provider):
    token_ok(DISBURSEMENT_TOKEN_URL)
    responses.post(REFUND_URL, body=requests.ReadTimeout("slow"))
    with pytest.raises(ProviderError) as caught:
        provider.send_refund(refund())
    assert caught.value.ambiguous


@responses.activate
def test_a_refund_5xx_is_ambiguous_a_4xx_is_not(provider):
    token_ok(DISBURSEMENT_TOKEN_URL)
    responses.post(REFUND_URL, status=503)
    with pytest.raises(ProviderError) as caught:
        provider.send_refund(refund())
    assert caught.value.ambiguous
    responses.replace(responses.POST, REFUND_URL, status=400)
    with pytest.raises(ProviderError) as caught:
        provider.send_refund(refund())
    assert not caught.value.ambiguous


@pytest.mark.parametrize(
    ("status", "name", "expected"),
    [
        (200, "refund_status_successful.json", PaymentStatus.SUCCEEDED),
        (200, "refund_status_pending.json", PaymentStatus.PENDING),
        (200, "refund_status_failed.json", PaymentStatus.FAILED),
        (404, "status_not_found_404.json", PaymentStatus.PENDING),
    ],
)
@responses.activate
def test_refund_status(provider, status, name, expected):
    token_ok(DISBURSEMENT_TOKEN_URL)
    responses.get(STATUS_URL, status=status, json=fixture(name))
    result = provider.refund_status(reference=REFUND_REFERENCE, provider_reference=REFUND_REFERENCE_ID)
    assert result is not None
    assert result.status == expected
    assert result.our_reference == REFUND_REFERENCE and result.provider_reference == REFUND_REFERENCE_ID


@responses.activate
def test_a_cancelled_refund_is_a_failed_refund(provider):
    token_ok(DISBURSEMENT_TOKEN_URL)
    responses.get(STATUS_URL, json={**fixture("refund_status_failed.json"), "reason": "APPROVAL_REJECTED"})
    result = provider.refund_status(reference=REFUND_REFERENCE, provider_reference=REFUND_REFERENCE_ID)
    assert result is not None and result.status == PaymentStatus.FAILED


def test_refund_status_without_an_id_is_unknown(provider):
    result = provider.refund_status(reference=REFUND_REFERENCE, provider_reference="")
    assert result is not None and result.status == PaymentStatus.UNKNOWN


@pytest.mark.parametrize("name", [n for n, e in CALLBACKS.items() if e["kind"] == "refund"])
def test_every_refund_callback_fixture_parses_as_the_manifest_says(provider, name):
    entry = CALLBACKS[name]
    result = provider.parse_refund_result("refund", raw_fixture(name))
    assert result.status == entry["status"]
    assert result.our_reference == entry["our_reference"]
    assert result.provider_reference == entry["provider_reference"]


def test_refund_callbacks_of_other_kinds_or_unreadable(provider):
    with pytest.raises(CallbackMalformed):
        provider.parse_refund_result("collection", raw_fixture("callback_refund_successful.json"))
    with pytest.raises(CallbackMalformed):
        provider.parse_refund_result("refund", b"[]")
