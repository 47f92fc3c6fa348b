"""M-Pesa Express (STK push): the prompt we send, the callbacks Daraja sends back (every real payload in
fixtures/mpesa), the STK Push Query that decides. HTTP only, no database; the far side is `responses`."""

import dataclasses
import json
from decimal import Decimal

import pytest
import responses

from payments.providers.base import CallbackMalformed, PaymentRef, PaymentStatus, ProviderError
from payments.providers.mpesa.client import stk_password
from payments.providers.mpesa.codes import status_for_result_code
from payments.providers.mpesa.provider import MpesaProvider
from payments.tests.mpesa_fakes import PASSKEY, QUERY_URL, STK_URL, TOKEN_URL, fixture, raw_fixture
from payments.tests.providers.mpesa.support import CHECKOUT_ID, KWARGS, REFERENCE, charge, token_ok

# --- STK push -------------------------------------------------------------------------------------------


@responses.activate
def test_stk_push_body(provider):
    token_ok()
    responses.post(STK_URL, json=fixture("stkpush_accepted.json"))
    result = provider.start_charge(charge(msisdn="0712345678"))
    assert result.status == PaymentStatus.PENDING
    assert result.provider_reference == CHECKOUT_ID
    sent = json.loads(responses.calls[1].request.body)
    assert sent == {
        "BusinessShortCode": "174379",
        "Password": stk_password("174379", PASSKEY, "20260101120000"),
        "Timestamp": "20260101120000",
        "TransactionType": "CustomerPayBillOnline",
        "Amount": 1000,
        "PartyA": "254712345678",
        "PartyB": "174379",
        "PhoneNumber": "254712345678",
        "CallBackURL": "https://donate.example.org/webhooks/mpesa/stkpush/tok123/",
        "AccountReference": "DN7",
        "TransactionDesc": "Donation",
    }
    assert responses.calls[1].request.headers["Authorization"] == "Bearer c9SQxWWhmdVRlyh0zh8gZDTkubVF"
    assert len(sent["AccountReference"]) <= 12 and len(sent["TransactionDesc"]) <= 13


@responses.activate
def test_buy_goods_sends_the_till_as_party_b():
    provider = MpesaProvider(**KWARGS, transaction_type="CustomerBuyGoodsOnline", party_b="5432100")
    token_ok()
    responses.post(STK_URL, json=fixture("stkpush_accepted.json"))
    provider.start_charge(charge())
    sent = json.loads(responses.calls[1].request.body)
    assert sent["TransactionType"] == "CustomerBuyGoodsOnline"
    assert sent["BusinessShortCode"] == "174379" and sent["PartyB"] == "5432100"


def test_unknown_transaction_type_is_a_configuration_error():
    with pytest.raises(ValueError, match="MPESA_TRANSACTION_TYPE"):
        MpesaProvider(**KWARGS, transaction_type="CustomerPayBill")


@responses.activate
def test_callback_url_override_with_token(provider):
    provider.stk = dataclasses.replace(provider.stk, callback_url_override="https://hooks.example.org/daraja/{token}/")
    token_ok()
    responses.post(STK_URL, json=fixture("stkpush_accepted.json"))
    provider.start_charge(charge())
    assert json.loads(responses.calls[1].request.body)["CallBackURL"] == "https://hooks.example.org/daraja/tok123/"


@pytest.mark.parametrize("amount", ["10.50", "0.99", "99.01"])
@responses.activate
def test_non_integer_amount_is_refused_not_rounded(provider, amount):
    with pytest.raises(ProviderError, match="whole shillings") as caught:
        provider.start_charge(charge(amount=amount))
    assert caught.value.status_code == 400
    assert len(responses.calls) == 0


def test_other_currency_refused(provider):
    with pytest.raises(ProviderError, match="KES"):
        provider.start_charge(charge(currency="TZS"))


@pytest.mark.parametrize(
    ("name", "status", "text"),
    [
        ("stkpush_invalid_phone.json", 400, "Invalid PhoneNumber"),
        ("stkpush_wrong_credentials.json", 500, "Wrong credentials"),
        ("stkpush_subscriber_locked.json", 500, "Unable to lock subscriber"),
    ],
)
@responses.activate
def test_stk_push_refusals_are_provider_errors_sent_once(provider, name, status, text):
    token_ok()
    responses.post(STK_URL, json=fixture(name), status=status)
    with pytest.raises(ProviderError, match=text):
        provider.start_charge(charge())
    assert len([c for c in responses.calls if c.request.url == STK_URL]) == 1  # never retried


@responses.activate
def test_invalid_token_answer_forgets_the_cached_token(provider):
    token_ok()
    responses.post(STK_URL, json=fixture("stkpush_invalid_token.json"), status=404)
    with pytest.raises(ProviderError):
        provider.start_charge(charge())
    token_ok()
    provider.access_token()
    assert len([c for c in responses.calls if c.request.url.startswith(TOKEN_URL)]) == 2


@responses.activate
def test_stk_push_timeout_is_not_retried(provider):
    import requests

    token_ok()
    responses.post(STK_URL, body=requests.ConnectTimeout("slow"))
    with pytest.raises(ProviderError):
        provider.start_charge(charge())
    assert len([c for c in responses.calls if c.request.url == STK_URL]) == 1


# --- callbacks ------------------------------------------------------------------------------------------


def test_success_callback_documented_shape(provider):
    result = provider.parse_callback("stkpush", raw_fixture("callback_success_documented.json"), {})
    assert result.status == PaymentStatus.SUCCEEDED
    assert result.provider_reference == "ws_CO_191220191020363925"
    assert result.amount == Decimal("1")
    assert result.currency == "KES"
    assert result.receipt == "NLJ7RT61SV"
    assert result.msisdn == "254708374149"
    assert result.our_reference == ""


def test_success_callback_with_balance_lacking_value(provider):
    result = provider.parse_callback("stkpush", raw_fixture("callback_success_balance_without_value.json"), {})
    assert result.status == PaymentStatus.SUCCEEDED
    assert result.receipt == "NLJ7RT61SV"
    assert result.amount == Decimal("1.00")


def test_metadata_item_as_single_object(provider):
    result = provider.parse_callback("stkpush", raw_fixture("callback_success_single_item_object.json"), {})
    assert result.status == PaymentStatus.SUCCEEDED and result.amount == Decimal("1")


@pytest.mark.parametrize(
    ("name", "status", "reason"),
    [
        ("callback_cancelled_1032.json", PaymentStatus.CANCELLED, "Request cancelled by user (M-Pesa 1032)"),
        ("callback_cancelled_prefixed.json", PaymentStatus.CANCELLED, "Request cancelled by user (M-Pesa 1032)"),
        ("callback_result_code_as_string.json", PaymentStatus.CANCELLED, "(M-Pesa 1032)"),
        ("callback_insufficient_funds_1.json", PaymentStatus.FAILED, "insufficient"),
        ("callback_no_answer_1037.json", PaymentStatus.EXPIRED, "(M-Pesa 1037)"),
        ("callback_wrong_pin_2001.json", PaymentStatus.FAILED, "The initiator information is invalid. (M-Pesa 2001)"),
        ("callback_expired_1019.json", PaymentStatus.EXPIRED, "expired"),
        ("callback_push_error_1025.json", PaymentStatus.FAILED, "(M-Pesa 1025)"),
        ("callback_subscriber_locked_1001.json", PaymentStatus.FAILED, "(M-Pesa 1001)"),
        ("callback_duplicate_rule_17.json", PaymentStatus.FAILED, "(M-Pesa 17)"),
        ("callback_push_error_9999.json", PaymentStatus.FAILED, "(M-Pesa 9999)"),
        ("callback_smsc_timeout_1036.json", PaymentStatus.EXPIRED, "(M-Pesa 1036)"),
        ("callback_unknown_code.json", PaymentStatus.UNKNOWN, "(M-Pesa 5555)"),
    ],
)
def test_failure_callbacks_keep_the_reason(provider, name, status, reason):
    result = provider.parse_callback("stkpush", raw_fixture(name), {})
    assert result.status == status
    assert reason in result.message
    assert result.provider_reference == "ws_CO_21072024125243250722943992"
    assert result.amount is None and result.receipt == ""


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b"{}",
        b'{"Body": {}}',
        b'{"Body": {"stkCallback": {"ResultCode": 0}}}',
        b'{"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_1"}}}',
        b'{"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_1", "ResultCode": null}}}',
        b'{"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_1", "ResultCode": 0}}}',
        b'{"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_1", "ResultCode": 0, "CallbackMetadata": '
        b'{"Item": [{"Name": "Amount", "Value": "lots"}]}}}}',
        b'{"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_1", "ResultCode": 0, "CallbackMetadata": "x"}}}',
    ],
)
def test_malformed_callbacks(provider, body):
    with pytest.raises(CallbackMalformed):
        provider.parse_callback("stkpush", body, {})


def test_result_code_table():
    assert status_for_result_code(0)[0] == PaymentStatus.SUCCEEDED
    assert status_for_result_code("0")[0] == PaymentStatus.SUCCEEDED
    assert status_for_result_code("4999")[0] == PaymentStatus.PENDING
    assert status_for_result_code(1032)[0] == PaymentStatus.CANCELLED
    assert status_for_result_code(1037)[0] == PaymentStatus.EXPIRED
    assert status_for_result_code(2001)[0] == PaymentStatus.FAILED
    assert status_for_result_code("R000002")[0] == PaymentStatus.UNKNOWN


# --- STK push query -------------------------------------------------------------------------------------

REF = PaymentRef(reference=REFERENCE, provider_reference="ws_CO_13012021093521236557")


@pytest.mark.parametrize(
    ("name", "http", "status", "text"),
    [
        ("query_success.json", 200, PaymentStatus.SUCCEEDED, "processed successfully"),
        ("query_cancelled_1032.json", 200, PaymentStatus.CANCELLED, "cancelled"),
        ("query_no_answer_1037.json", 200, PaymentStatus.EXPIRED, "No response from user. (M-Pesa 1037)"),
        ("query_pending_4999.json", 200, PaymentStatus.PENDING, "4999"),
        ("query_pending_500.json", 500, PaymentStatus.PENDING, "being processed"),
    ],
)
@responses.activate
def test_stk_query_answers(provider, name, http, status, text):
    token_ok()
    responses.post(QUERY_URL, json=fixture(name), status=http)
    result = provider.fetch_status(REF)
    assert result.status == status
    assert text in result.message
    assert result.provider_reference == "ws_CO_13012021093521236557"
    sent = json.loads(responses.calls[1].request.body)
    assert sent == {
        "BusinessShortCode": "174379",
        "Password": stk_password("174379", PASSKEY, "20260101120000"),
        "Timestamp": "20260101120000",
        "CheckoutRequestID": "ws_CO_13012021093521236557",
    }


@responses.activate
def test_stk_query_spike_arrest_is_a_retryable_error(provider):
    token_ok()
    responses.post(QUERY_URL, json=fixture("query_spike_arrest.json"), status=500)
    with pytest.raises(ProviderError) as caught:
        provider.fetch_status(REF)
    assert caught.value.retryable


def test_stk_query_without_checkout_id_is_unknown(provider):
    assert provider.fetch_status(PaymentRef(reference=REFERENCE, provider_reference="")).status == (
        PaymentStatus.UNKNOWN
    )
