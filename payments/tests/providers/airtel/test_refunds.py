"""Refunds by Airtel's money id: whole payments only, the receipt named, refusals and ambiguity (never re-sent)."""

import pytest
import requests

from payments.providers.base import PaymentStatus, ProviderError
from payments.tests.providers.airtel.support import REFUND_URL, calls_to, fixture, make_provider, refund, sent_json


@pytest.mark.parametrize("name", ["refund_success.json", "refund_success_envelope_false.json"])
def test_a_refund_by_airtels_money_id(airtel, with_token, name):
    airtel.post(REFUND_URL, json=fixture(name))
    accepted = make_provider().send_refund(refund())
    call = calls_to(airtel, REFUND_URL)[0]
    assert sent_json(call) == {"transaction": {"airtel_money_id": "CI210104.1105.C00018"}}
    assert (call.request.headers["X-Country"], call.request.headers["X-Currency"]) == ("UG", "UGX")
    assert accepted.provider_reference == "CI210104.1549.C00029"
    # Airtel's documented answer ("SUCCESS", ESB000010) is the result: it has no refund enquiry or callback.
    assert (accepted.status, accepted.receipt) == (PaymentStatus.SUCCEEDED, "CI210104.1549.C00029")


@pytest.mark.parametrize(
    ("state", "result_code", "expected"),
    [
        ("TS", "ESB000010", PaymentStatus.SUCCEEDED),
        ("success", "ESB000010", PaymentStatus.SUCCEEDED),
        ("", "ESB000010", PaymentStatus.SUCCEEDED),
        ("TIP", "ESB000010", PaymentStatus.PENDING),
        ("TA", "ESB000010", PaymentStatus.PENDING),
    ],
)
def test_what_an_accepted_refund_answer_settles(airtel, with_token, state, result_code, expected):
    transaction = {"airtel_money_id": "CI210104.1549.C00029", **({"status": state} if state else {})}
    status = {"code": "200", "message": "SUCCESS", "result_code": result_code, "success": True}
    airtel.post(REFUND_URL, json={"data": {"transaction": transaction}, "status": status})
    assert make_provider().send_refund(refund()).status == expected


def test_the_refund_names_the_receipt_else_the_payment_reference(airtel, with_token):
    airtel.post(REFUND_URL, json=fixture("refund_success.json"))
    make_provider().send_refund(refund(payment_receipt="", payment_reference="MP210603.1234.L06941"))
    assert sent_json(calls_to(airtel, REFUND_URL)[0])["transaction"]["airtel_money_id"] == "MP210603.1234.L06941"


def test_a_refund_without_airtels_id_is_refused_before_sending(airtel):
    with pytest.raises(ProviderError, match="no Airtel Money id"):
        make_provider().send_refund(refund(payment_receipt="", payment_reference=""))
    assert not airtel.calls


def test_refunds_are_whole_payments_only():
    assert make_provider().refunds_partial is False
    assert make_provider().refund_status(reference="RHCI-RF-1", provider_reference="CI1") is None  # none documented


def test_a_refused_refund(airtel, with_token):
    airtel.post(REFUND_URL, json=fixture("refund_not_found.json"))
    with pytest.raises(ProviderError, match="No Transaction Found") as raised:
        make_provider().send_refund(refund())
    assert raised.value.ambiguous is False


@pytest.mark.parametrize("error", [requests.ReadTimeout("read timed out"), None])
def test_a_refund_that_may_have_happened_is_ambiguous(airtel, with_token, error):
    if error is None:
        airtel.post(REFUND_URL, status=502, body="Bad Gateway")
    else:
        airtel.post(REFUND_URL, body=error)
    with pytest.raises(ProviderError) as raised:
        make_provider().send_refund(refund())
    assert raised.value.ambiguous is True
    assert len(calls_to(airtel, REFUND_URL)) == 1
