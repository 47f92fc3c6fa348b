"""AzamPay's status query and its free-text statuses, read conservatively (anything unclear is never paid).
HTTP only, no database; the far side is `responses`."""

from decimal import Decimal

import pytest
from responses import matchers

from payments.providers.azampay.codes import status_from_text
from payments.providers.base import PaymentStatus, ProviderError
from payments.tests.azampay_fakes import STATUS_URL, fixture
from payments.tests.providers.azampay.support import REFERENCE, TRANSACTION_ID, calls_to, make_provider, status_ref

# --- status query ---------------------------------------------------------------------------------------


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
    # The documented answer names neither our reference nor the amount: nothing of ours is filled in for them.
    assert result.our_reference == "" and result.amount is None
    assert status.calls[0].request.headers["Authorization"] == "Bearer test-token"


def test_a_status_answer_naming_our_reference_and_amount_reports_them(azam, with_token):
    answer = {**fixture("status_success.json"), "utilityref": REFERENCE, "amount": "5000"}
    azam.get(STATUS_URL, json=answer)
    result = make_provider().fetch_status(status_ref())
    assert (result.our_reference, result.amount) == (REFERENCE, Decimal("5000"))


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
        # read conservatively: pending words win over "success" in the same text
        ("Pending success confirmation", PaymentStatus.PENDING),
        ("Processing: success expected", PaymentStatus.PENDING),
        ("Awaiting payer; not yet failed", PaymentStatus.PENDING),
        ("Transaction successful", PaymentStatus.SUCCEEDED),
        ("Transaction unsuccessful", PaymentStatus.FAILED),
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
