"""MTN MoMo Collection: the request to pay we send, what each answer means (202 only is accepted; refusals,
5xx and timeouts), the status GET (every fixture, 404 right after the 202, reasons as strings or objects)
and the callbacks (every fixture in the manifest). HTTP only, no database; the far side is `responses`."""

import json
from decimal import Decimal

import pytest
import requests
import responses

from payments.providers.base import (
    CallbackMalformed,
    CallbackTrust,
    PaymentRef,
    PaymentStatus,
    ProviderError,
    RawCallback,
    UrlToken,
)
from payments.providers.mtn.codes import REASONS, status_for
from payments.tests.fixtures import load_fixture
from payments.tests.providers.mtn.support import (
    CALLBACK_URL,
    COLLECTION_KEY,
    COLLECTION_TOKEN_URL,
    REFERENCE,
    RTP_URL,
    TOKEN,
    X_REFERENCE_ID,
    charge,
    fixture,
    raw_fixture,
    token_ok,
)

STATUS_URL = f"{RTP_URL}/{X_REFERENCE_ID}"
MANIFEST = load_fixture("mtn", "callbacks.json")


def ref(provider_reference: str = X_REFERENCE_ID) -> PaymentRef:
    return PaymentRef(reference=REFERENCE, provider_reference=provider_reference, amount=Decimal("50000"))


# --- request to pay -------------------------------------------------------------------------------------


@responses.activate
def test_request_to_pay_headers_and_body(provider):
    token_ok()
    responses.post(RTP_URL, status=202)
    result = provider.start_charge(charge(msisdn="+46 733 123 454", description="Donation for Amani's surgery"))
    assert result.status == PaymentStatus.PENDING
    assert result.provider_reference == X_REFERENCE_ID  # the id the service stored before the request
    assert result.our_reference == REFERENCE
    request = responses.calls[1].request
    assert request.headers["X-Reference-Id"] == X_REFERENCE_ID
    assert request.headers["X-Callback-Url"] == CALLBACK_URL  # carries the payment's own secret
    assert request.headers["X-Target-Environment"] == "sandbox"
    assert request.headers["Ocp-Apim-Subscription-Key"] == COLLECTION_KEY
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert json.loads(request.body) == {
        "amount": "50000",
        "currency": "EUR",
        "externalId": REFERENCE,
        "payer": {"partyIdType": "MSISDN", "partyId": "46733123454"},
        "payerMessage": "Donation for Amanis surgery",
        "payeeNote": f"Donation {REFERENCE}",
    }


@responses.activate
def test_a_long_description_is_cut_to_160(provider):
    token_ok()
    responses.post(RTP_URL, status=202)
    provider.start_charge(charge(description="A" * 300))
    sent = json.loads(responses.calls[1].request.body)
    assert len(sent["payerMessage"]) == 160 and len(sent["payeeNote"]) <= 160


@responses.activate
def test_no_callback_url_sends_no_header(provider):
    token_ok()
    responses.post(RTP_URL, status=202)
    provider.start_charge(charge(callback_url=""))
    assert "X-Callback-Url" not in responses.calls[1].request.headers  # present but empty → 400


@responses.activate
def test_a_charge_without_a_stored_id_gets_a_fresh_uuid(provider):
    token_ok()
    responses.post(RTP_URL, status=202)
    result = provider.start_charge(charge(provider_reference=""))
    assert result.provider_reference == responses.calls[1].request.headers["X-Reference-Id"]
    assert result.provider_reference != X_REFERENCE_ID


def test_reference_before_request_is_a_new_uuid4_each_time(provider):
    first, second = provider.reference_before_request(), provider.reference_before_request()
    assert first != second and len(first) == 36 and first[14] == "4"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"amount": "100.50"}, "whole amounts"),
        ({"amount": "0"}, "at least 1"),
        ({"currency": "UGX"}, "collects EUR"),
        ({"msisdn": "12345"}, "country code"),
        ({"provider_reference": "not-a-uuid"}, "UUID"),
    ],
)
@responses.activate
def test_refused_before_anything_is_sent(provider, kwargs, match):
    with pytest.raises(ProviderError, match=match) as caught:
        provider.start_charge(charge(**kwargs))
    assert not caught.value.ambiguous
    assert len(responses.calls) == 0


@pytest.mark.parametrize(
    ("status", "body", "ambiguous", "text"),
    [
        (400, None, False, "did not send the payment prompt"),
        (403, {"code": "FORBIDDEN IP", "message": "FORBIDDEN IP"}, False, "FORBIDDEN IP"),
        (404, None, False, "did not send"),
        (200, None, False, "did not send"),  # a 2xx other than 202 is not an acceptance
        (500, "error_invalid_currency_500.json", False, "Currency not supported"),
        (500, "error_not_allowed_target_environment_500.json", False, "target environment is forbidden"),
        (500, "error_internal_processing_500.json", True, "INTERNAL_PROCESSING_ERROR"),
        (503, None, True, "did not send"),
        (409, "error_duplicate_reference_409.json", True, "already has this request to pay"),
    ],
)
@responses.activate
def test_anything_but_202_is_a_provider_error_sent_once(provider, status, body, ambiguous, text):
    token_ok()
    payload = fixture(body) if isinstance(body, str) else body
    responses.post(RTP_URL, status=status, json=payload) if payload else responses.post(RTP_URL, status=status)
    with pytest.raises(ProviderError, match=text) as caught:
        provider.start_charge(charge())
    assert caught.value.status_code == status
    assert caught.value.ambiguous is ambiguous  # 5xx (not a check MTN made first) or 409: may have been created
    assert len([c for c in responses.calls if c.request.url == RTP_URL]) == 1


@responses.activate
def test_a_401_on_request_to_pay_is_sent_again_with_the_same_reference_id(provider):
    token_ok()
    responses.post(RTP_URL, status=401, json={"statusCode": 401, "message": "Unauthorized"})
    responses.post(RTP_URL, status=202)
    provider.start_charge(charge())
    posts = [c.request for c in responses.calls if c.request.url == RTP_URL]
    assert len(posts) == 2
    assert {p.headers["X-Reference-Id"] for p in posts} == {X_REFERENCE_ID}  # MTN never executes one id twice


@responses.activate
def test_a_read_timeout_after_sending_is_ambiguous_and_not_retried(provider):
    token_ok()
    responses.post(RTP_URL, body=requests.ReadTimeout("slow"))
    with pytest.raises(ProviderError) as caught:
        provider.start_charge(charge())
    assert caught.value.ambiguous
    assert len([c for c in responses.calls if c.request.url == RTP_URL]) == 1


@responses.activate
def test_a_connect_timeout_is_not_ambiguous(provider):
    token_ok()
    responses.post(RTP_URL, body=requests.ConnectTimeout("no route"))
    with pytest.raises(ProviderError) as caught:
        provider.start_charge(charge())
    assert not caught.value.ambiguous  # nothing left us


@responses.activate
def test_a_token_failure_sends_no_charge(provider):
    responses.post(COLLECTION_TOKEN_URL, status=500, json=fixture("token_login_failed_500.json"))
    with pytest.raises(ProviderError) as caught:
        provider.start_charge(charge())
    assert not caught.value.ambiguous
    assert all(c.request.url != RTP_URL for c in responses.calls)


# --- the status GET -------------------------------------------------------------------------------------


@responses.activate
def test_status_successful(provider):
    token_ok()
    responses.get(STATUS_URL, json=fixture("status_successful.json"))
    result = provider.fetch_status(ref())
    assert result.status == PaymentStatus.SUCCEEDED
    assert result.amount == Decimal("50000") and result.currency == "EUR"
    assert result.receipt == "1574559373"  # financialTransactionId
    assert result.provider_reference == X_REFERENCE_ID and result.our_reference == REFERENCE
    request = responses.calls[1].request
    assert request.headers["X-Target-Environment"] == "sandbox"
    assert request.headers["Ocp-Apim-Subscription-Key"] == COLLECTION_KEY
    assert "X-Reference-Id" not in request.headers


@responses.activate
def test_status_with_numeric_ids_as_in_mtns_own_example(provider):
    token_ok()
    responses.get(STATUS_URL, json=fixture("status_successful_numeric_ids.json"))
    result = provider.fetch_status(ref())
    assert result.status == PaymentStatus.SUCCEEDED
    assert result.receipt == "23503452" and result.our_reference == "947354" and result.amount == Decimal(100)


@pytest.mark.parametrize("name", ["status_pending.json", "status_created.json"])
@responses.activate
def test_status_pending_and_created_are_pending(provider, name):
    token_ok()
    responses.get(STATUS_URL, json=fixture(name))
    result = provider.fetch_status(ref())
    assert result.status == PaymentStatus.PENDING and result.receipt == ""


@responses.activate
def test_status_404_right_after_the_202_is_pending_never_failed(provider):
    token_ok()
    responses.get(STATUS_URL, status=404, json=fixture("status_not_found_404.json"))
    result = provider.fetch_status(ref())
    assert result.status == PaymentStatus.PENDING
    assert "does not show this request yet" in result.message


@pytest.mark.parametrize("reason", sorted(REASONS))
@responses.activate
def test_status_failed_with_each_reason(provider, reason):
    token_ok()
    responses.get(STATUS_URL, json=fixture(f"status_failed_{reason.lower()}.json"))
    result = provider.fetch_status(ref())
    expected, words = REASONS[reason]
    assert result.status == expected
    assert result.message == f"{words} (MTN {reason})"
    assert result.receipt == ""


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        ("APPROVAL_REJECTED", PaymentStatus.CANCELLED),
        ("EXPIRED", PaymentStatus.EXPIRED),
        ("COULD_NOT_PERFORM_TRANSACTION", PaymentStatus.EXPIRED),
        ("NOT_ENOUGH_FUNDS", PaymentStatus.FAILED),
        ("PAYER_NOT_FOUND", PaymentStatus.FAILED),
        ("ONGOING", PaymentStatus.PENDING),
    ],
)
def test_the_reasons_that_decide_the_ending(reason, status):
    assert status_for("FAILED", reason)[0] == status


@responses.activate
def test_status_reason_as_an_object(provider):
    token_ok()
    responses.get(STATUS_URL, json=fixture("status_failed_reason_object.json"))
    result = provider.fetch_status(ref())
    assert result.status == PaymentStatus.FAILED
    assert result.message == "This number has no MTN MoMo wallet. (MTN PAYER_NOT_FOUND)"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("status_failed_unknown_reason.json", "MTN MoMo reports that the payment failed. (MTN SOMETHING_NEW)"),
        ("status_failed_without_reason.json", "MTN MoMo reports that the payment failed."),
        ("status_failed_community_generic.json", "(MTN INTERNAL_PROCESSING_ERROR)"),
    ],
)
@responses.activate
def test_status_failed_unknown_or_no_reason_is_failed_with_the_raw_reason(provider, name, message):
    token_ok()
    responses.get(STATUS_URL, json=fixture(name))
    result = provider.fetch_status(ref())
    assert result.status == PaymentStatus.FAILED
    assert message in result.message


@pytest.mark.parametrize("status", ["REJECTED", "TIMEOUT", "WEIRD"])
@responses.activate
def test_status_words_we_do_not_know_are_unknown_never_failed(provider, status):
    token_ok()
    responses.get(STATUS_URL, json={**fixture("status_pending.json"), "status": status})
    assert provider.fetch_status(ref()).status == PaymentStatus.UNKNOWN


@responses.activate
def test_an_unreadable_status_answer_is_unknown(provider):
    token_ok()
    responses.get(STATUS_URL, json={"amount": "50000"})
    assert provider.fetch_status(ref()).status == PaymentStatus.UNKNOWN


@responses.activate
def test_status_5xx_is_a_retryable_provider_error(provider):
    token_ok()
    responses.get(STATUS_URL, status=500, json=fixture("error_internal_processing_500.json"))
    with pytest.raises(ProviderError) as caught:
        provider.fetch_status(ref())
    assert caught.value.retryable and not caught.value.ambiguous


def test_status_without_a_reference_id_is_unknown(provider):
    assert provider.fetch_status(ref("")).status == PaymentStatus.UNKNOWN


# --- callbacks --------------------------------------------------------------------------------------------

CALLBACKS = {name: entry for name, entry in MANIFEST.items() if name != "not_callbacks"}


@pytest.mark.parametrize(
    "name", [n for n, e in CALLBACKS.items() if e["kind"] == "collection" and not e.get("malformed")]
)
def test_every_collection_callback_fixture_parses_as_the_manifest_says(provider, name):
    entry = CALLBACKS[name]
    result = provider.parse_callback("collection", raw_fixture(name), {})
    assert result.status == entry["status"]
    assert result.provider_reference == entry["provider_reference"]
    assert result.our_reference == entry["our_reference"]
    if "amount" in entry:
        assert result.amount == Decimal(entry["amount"])


@pytest.mark.parametrize("name", [n for n, e in CALLBACKS.items() if e["kind"] == "collection" and e.get("malformed")])
def test_malformed_collection_callbacks(provider, name):
    with pytest.raises(CallbackMalformed):
        provider.parse_callback("collection", raw_fixture(name), {})


def test_success_callback_carries_receipt_and_payer(provider):
    result = provider.parse_callback("collection", raw_fixture("callback_collection_successful.json"), {})
    assert result.receipt == "1574559373" and result.msisdn == "46733123450" and result.currency == "EUR"


@pytest.mark.parametrize("body", [b"not json", b"", b"[]", b'{"status": 3}', b'{"status": "FAILED", "amount": "x"}'])
def test_unreadable_callback_bodies(provider, body):
    with pytest.raises(CallbackMalformed):
        provider.parse_callback("collection", body, {})


def test_other_kinds_are_not_payment_callbacks(provider):
    with pytest.raises(CallbackMalformed):
        provider.parse_callback("disbursement", raw_fixture("callback_transfer_successful.json"), {})


@pytest.mark.parametrize(
    ("token", "trust"),
    [
        (UrlToken.INVALID, CallbackTrust.REJECTED),
        (UrlToken.VALID, CallbackTrust.UNVERIFIED),
        (UrlToken.ABSENT, CallbackTrust.UNVERIFIED),
    ],
)
@pytest.mark.parametrize("kind", ["collection", "disbursement", "remittance", "refund"])
def test_callbacks_are_never_trusted_and_a_wrong_secret_is_rejected(provider, kind, token, trust):
    body = raw_fixture("callback_collection_successful.json")
    assert provider.authenticate_callback(RawCallback(kind=kind, body=body, url_token=token)) == trust


@pytest.mark.parametrize("accepted", [True, False])
def test_ack_body(provider, accepted):
    assert provider.ack("collection", accepted) == (200, {"status": "accepted", "message": "Callback received"})
