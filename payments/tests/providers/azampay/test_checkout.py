"""AzamPay's three ways to collect: MNO push, hosted card page, bank checkout. Sent once, never retried.
HTTP only, no database; the far side is `responses`."""

import json
from decimal import Decimal

import pytest
import requests

from payments.providers.base import PaymentStatus, ProviderError
from payments.tests.azampay_fakes import BANK_URL, MNO_URL, POST_CHECKOUT_URL, fixture, raw_fixture
from payments.tests.providers.azampay.support import (
    KWARGS,
    REFERENCE,
    TRANSACTION_ID,
    calls_to,
    make_provider,
    mno_charge,
)

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
