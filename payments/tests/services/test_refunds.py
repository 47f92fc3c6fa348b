"""Refunds: maker-checker, sent once, the ledger reversed by new rows (never an edit), never more than was
paid, never twice. M-Pesa's Transaction Reversal is mocked with `responses`; AzamPay has no refund API, so its
refunds are recorded by hand."""

import json
from decimal import Decimal
from io import StringIO

import pytest
import requests
import responses
from django.core import mail
from django.core.management import call_command
from django.test import Client, TestCase

from donor.models import Allocation, Donation
from donor.services import donation_complete, donation_create, donation_refund, donor_for_guest
from patients.models import Patient
from patients.tests.factories import PatientFactory
from payments.models import CallbackEvent, Payment, Payout, Refund
from payments.services.refunds import (
    RefundRefused,
    refund_approve,
    refund_request,
    refund_resolve,
)
from payments.tests.factories import staff_user
from payments.tests.mpesa_fakes import API, B2C_TOKEN, TOKEN_URL

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("mpesa_settings")]

REVERSAL_URL = f"{API}/mpesa/reversal/v1/request"
MAKER = ("payments.add_refund", "payments.view_refund")
CHECKER = ("payments.approve_refund", "payments.resolve_refund", "payments.view_refund")
CONVERSATION_ID = "AG_20261201_00004e2a5b1c7d9f0aaa"


@pytest.fixture
def maker():
    return staff_user("refund-maker", *MAKER)


@pytest.fixture
def checker():
    return staff_user("refund-checker", *CHECKER)


@pytest.fixture
def patient():
    return PatientFactory(currency="KES", funding_goal=Decimal("1000"))


def paid_donation(patient, amount="1000", provider="mpesa", receipt="TL4RCPT001", email=""):
    donor = donor_for_guest(name="Amina", email=email)
    donation = donation_create(patient=patient, amount=Decimal(amount), currency=patient.currency, donor=donor)
    Payment.objects.create(
        donation=donation,
        reference=donation.reference,
        provider=provider,
        channel="" if provider == "mpesa" else "Mpesa",
        msisdn="254708374149",
        amount=donation.amount,
        currency=donation.currency,
        status=Payment.Status.SUCCEEDED,
        provider_reference=f"ws_CO_{donation.pk}",
        receipt=receipt,
    )
    donation_complete(donation_id=donation.pk)
    return Donation.objects.get(pk=donation.pk)


def reversal_accepted():
    responses.get(TOKEN_URL, json={"access_token": "t", "expires_in": "3599"})
    return responses.post(
        REVERSAL_URL,
        json={
            "OriginatorConversationID": "f1e2-4b95-a71d-b30d3cdbb7a7735297",
            "ConversationID": CONVERSATION_ID,
            "ResponseCode": "0",
            "ResponseDescription": "Accept the service request successfully.",
        },
    )


def reversal_result(code=0, desc="The service request is processed successfully.", conversation_id=CONVERSATION_ID):
    return {
        "Result": {
            "ResultType": 0,
            "ResultCode": code,
            "ResultDesc": desc,
            "OriginatorConversationID": "f1e2-4b95-a71d-b30d3cdbb7a7735297",
            "ConversationID": conversation_id,
            "TransactionID": "TL4REV0001",
            "ResultParameters": {"ResultParameter": [{"Key": "Amount", "Value": 1000}]},
        }
    }


def post(path, body):
    response = Client().post(path, data=json.dumps(body), content_type="application/json")
    return response.status_code, response.json()


def funding(patient) -> Decimal:
    patient.refresh_from_db()
    return patient.funding_received


# --- the whole path -------------------------------------------------------------------------------------


@responses.activate
def test_a_refund_is_requested_approved_by_another_sent_once_and_reverses_the_ledger(patient, maker, checker):
    donation = paid_donation(patient)
    patient.refresh_from_db()
    assert patient.status == Patient.Status.FULLY_FUNDED and funding(patient) == Decimal("1000")
    sent = reversal_accepted()

    refund = refund_request(donation=donation, amount=Decimal("1000"), reason="Donor asked", requested_by=maker)
    assert refund.status == Refund.Status.REQUESTED and sent.call_count == 0
    refund = refund_approve(refund_id=refund.pk, approved_by=checker)

    assert refund.status == Refund.Status.SENT and refund.provider_reference == CONVERSATION_ID
    body = json.loads(sent.calls[0].request.body)
    assert body["TransactionID"] == "TL4RCPT001" and body["Amount"] == 1000
    assert body["ResultURL"] == f"https://donate.example.org/webhooks/mpesa/reversal/result/{B2C_TOKEN}/"
    assert funding(patient) == Decimal("1000")  # nothing reversed before the result

    assert post(f"/webhooks/mpesa/reversal/result/{B2C_TOKEN}/", reversal_result()) == (
        200,
        {"ResultCode": 0, "ResultDesc": "Accepted"},
    )
    refund.refresh_from_db()
    assert refund.status == Refund.Status.REFUNDED
    donation.refresh_from_db()
    assert donation.status == Donation.Status.REFUNDED
    rows = list(donation.allocations.order_by("pk").values_list("entry", "amount"))
    assert rows == [("credit", Decimal("1000.00")), ("reversal", Decimal("-1000.00"))]  # history kept
    assert funding(patient) == Decimal("0")
    patient.refresh_from_db()
    assert patient.status == Patient.Status.FUNDING  # below the goal again: raising funds
    out = StringIO()
    call_command("verify_ledger", stdout=out)
    assert "Ledger OK" in out.getvalue()
    assert sent.call_count == 1


@responses.activate
def test_the_same_result_twice_reverses_once(patient, maker, checker):
    donation = paid_donation(patient)
    reversal_accepted()
    refund_approve(
        refund_id=refund_request(donation=donation, amount=Decimal("1000"), reason="", requested_by=maker).pk,
        approved_by=checker,
    )
    for _ in range(2):
        post(f"/webhooks/mpesa/reversal/result/{B2C_TOKEN}/", reversal_result())
    assert donation.allocations.filter(entry=Allocation.Entry.REVERSAL).count() == 1
    assert funding(patient) == Decimal("0")


def test_the_ledger_reversal_itself_is_idempotent(patient):
    donation = paid_donation(patient)
    donation_refund(donation_id=donation.pk, amount=Decimal("400"))
    donation_refund(donation_id=donation.pk, amount=Decimal("400"))
    assert funding(patient) == Decimal("600")
    donation.refresh_from_db()
    assert donation.status == Donation.Status.COMPLETED  # a partial refund leaves it completed
    assert "400" in donation.status_reason


# --- the rules ------------------------------------------------------------------------------------------


def test_the_requester_cannot_approve_even_with_both_permissions(patient):
    both = staff_user("both", *MAKER, *CHECKER)
    refund = refund_request(donation=paid_donation(patient), amount=Decimal("1000"), reason="", requested_by=both)
    with pytest.raises(RefundRefused, match="someone other than its requester"):
        refund_approve(refund_id=refund.pk, approved_by=both)


def test_staff_without_the_permissions_cannot_request_or_approve(patient, maker):
    clerk = staff_user("clerk", "payments.view_refund")
    donation = paid_donation(patient)
    with pytest.raises(RefundRefused, match="add_refund"):
        refund_request(donation=donation, amount=Decimal("1000"), reason="", requested_by=clerk)
    refund = refund_request(donation=donation, amount=Decimal("1000"), reason="", requested_by=maker)
    with pytest.raises(RefundRefused, match="approve_refund"):
        refund_approve(refund_id=refund.pk, approved_by=clerk)


@pytest.mark.parametrize(("amount", "message"), [("1001", "never refund more"), ("0", "positive"), ("500", "whole")])
def test_never_more_than_was_paid_and_mpesa_reverses_whole_payments_only(patient, maker, amount, message):
    with pytest.raises(RefundRefused, match=message):
        refund_request(donation=paid_donation(patient), amount=Decimal(amount), reason="", requested_by=maker)


def test_one_refund_per_donation(patient, maker):
    donation = paid_donation(patient)
    refund_request(donation=donation, amount=Decimal("1000"), reason="", requested_by=maker)
    with pytest.raises(RefundRefused, match="already has a refund"):
        refund_request(donation=donation, amount=Decimal("1000"), reason="", requested_by=maker)


def test_only_a_completed_donation_is_refunded(patient, maker):
    donation = donation_create(patient=patient, amount=Decimal("100"), currency="KES")
    with pytest.raises(RefundRefused, match="only a completed one"):
        refund_request(donation=donation, amount=Decimal("100"), reason="", requested_by=maker)


def test_a_refund_cannot_take_money_already_paid_out(patient, maker):
    donation = paid_donation(patient)
    Payout.objects.create(
        reference="RHCI-PO-x",
        patient=patient,
        treatment_partner=patient.treatment_partner,
        msisdn="254708374149",
        amount=Decimal("800"),
        currency="KES",
        requested_by=maker,
        status=Payout.Status.PAID,
    )
    with pytest.raises(RefundRefused, match="not yet paid out"):
        refund_request(donation=donation, amount=Decimal("1000"), reason="", requested_by=maker)


# --- faults ---------------------------------------------------------------------------------------------


@responses.activate
def test_a_reversal_that_times_out_after_sending_is_ambiguous_never_resent_then_resolved(patient, maker, checker):
    responses.get(TOKEN_URL, json={"access_token": "t", "expires_in": "3599"})
    sent = responses.post(REVERSAL_URL, body=requests.ReadTimeout("slow"))
    refund = refund_approve(
        refund_id=refund_request(donation=paid_donation(patient), amount=Decimal("1000"), reason="",
                                 requested_by=maker).pk,
        approved_by=checker,
    )  # fmt: skip
    assert refund.status == Refund.Status.AMBIGUOUS and refund.needs_review
    assert sent.call_count == 1
    with pytest.raises(RefundRefused, match="receipt"):
        refund_resolve(refund_id=refund.pk, refunded=True, resolved_by=checker)
    refund = refund_resolve(refund_id=refund.pk, refunded=True, resolved_by=checker, receipt="TL4PORTAL9")
    assert refund.status == Refund.Status.REFUNDED and refund.receipt == "TL4PORTAL9"
    assert funding(patient) == Decimal("0")
    assert sent.call_count == 1


@responses.activate
def test_a_queue_timeout_makes_it_ambiguous_and_the_late_result_settles_it(patient, maker, checker):
    donation = paid_donation(patient)
    reversal_accepted()
    refund = refund_approve(
        refund_id=refund_request(donation=donation, amount=Decimal("1000"), reason="", requested_by=maker).pk,
        approved_by=checker,
    )
    post(f"/webhooks/mpesa/reversal/timeout/{B2C_TOKEN}/", reversal_result(1, "The service request has timed out."))
    refund.refresh_from_db()
    assert refund.status == Refund.Status.AMBIGUOUS
    post(f"/webhooks/mpesa/reversal/result/{B2C_TOKEN}/", reversal_result())
    refund.refresh_from_db()
    assert refund.status == Refund.Status.REFUNDED and not refund.needs_review


@responses.activate
def test_a_refused_reversal_fails_and_leaves_the_ledger_alone(patient, maker, checker):
    donation = paid_donation(patient)
    reversal_accepted()
    refund = refund_approve(
        refund_id=refund_request(donation=donation, amount=Decimal("1000"), reason="", requested_by=maker).pk,
        approved_by=checker,
    )
    post(
        f"/webhooks/mpesa/reversal/result/{B2C_TOKEN}/",
        reversal_result("R000002", "The OriginalTransactionID is invalid"),
    )
    refund.refresh_from_db()
    assert refund.status == Refund.Status.FAILED and "R000002" in refund.result_desc
    assert funding(patient) == Decimal("1000")
    assert not donation.allocations.filter(entry=Allocation.Entry.REVERSAL).exists()


@responses.activate
def test_a_reversal_result_without_the_secret_is_held_for_review(patient, maker, checker):
    donation = paid_donation(patient)
    reversal_accepted()
    refund = refund_approve(
        refund_id=refund_request(donation=donation, amount=Decimal("1000"), reason="", requested_by=maker).pk,
        approved_by=checker,
    )
    status, _ = post("/webhooks/mpesa/reversal/result/", reversal_result())
    assert status == 200
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REVIEW  # anyone could have sent it
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SENT and funding(patient) == Decimal("1000")


# --- AzamPay: no refund API -----------------------------------------------------------------------------


@pytest.mark.usefixtures("azampay_settings")
def test_an_azampay_refund_is_paid_back_outside_and_recorded_with_its_receipt(maker, checker):
    patient = PatientFactory(currency="TZS", funding_goal=Decimal("1000000"))
    donation = paid_donation(patient, amount="5000", provider="azampay")
    refund = refund_request(donation=donation, amount=Decimal("2000"), reason="half back", requested_by=maker)
    assert refund.manual
    with pytest.raises(RefundRefused, match="no refund API"):
        refund_approve(refund_id=refund.pk, approved_by=checker)
    refund = refund_approve(refund_id=refund.pk, approved_by=checker, receipt="BANK-TX-77")
    assert refund.status == Refund.Status.REFUNDED and refund.receipt == "BANK-TX-77"
    assert funding(patient) == Decimal("3000")
    assert len(mail.outbox) == 0  # a guest without email: nothing to send; the admin notice goes to Telegram


def test_the_donor_gets_a_notice_of_the_refund(maker, checker):
    patient = PatientFactory(currency="TZS", funding_goal=Decimal("1000000"))
    donation = paid_donation(patient, "5000", "azampay", email="donor@example.org")
    mail.outbox.clear()
    refund = refund_request(donation=donation, amount=Decimal("5000"), reason="", requested_by=maker)
    with TestCase.captureOnCommitCallbacks(execute=True):
        refund_approve(refund_id=refund.pk, approved_by=checker, receipt="BANK-TX-78")
    assert [m.subject for m in mail.outbox] == [f"Your donation {donation.reference} was refunded"]
    assert "5,000" in mail.outbox[0].body
