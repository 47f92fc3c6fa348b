"""Refunds: maker-checker, sent once, the ledger reversed by new rows (never an edit), never more than was
paid, never twice. M-Pesa's Transaction Reversal is mocked with `responses`; AzamPay has no refund API, so its
refunds are recorded by hand. What every refund rail does with its result callback (settled once, copies,
forged, malformed) is test_pipeline_money_out.py's; the `mysql` tests race approvals and requests on MariaDB."""

import json
from decimal import Decimal
from io import StringIO

import pytest
import requests
from django.core import mail
from django.core.management import call_command
from django.test import TestCase

from donor.models import Allocation, Donation
from donor.services import donation_create, donation_refund
from patients.models import Patient
from patients.tests.factories import PatientFactory
from payments.models import CallbackEvent, Payout, Refund
from payments.services.refunds import RefundRefused, refund_approve, refund_request, refund_resolve
from payments.tests.drivers import MpesaReversal, paid_donation, request_accepted, reversal_result
from payments.tests.factories import REFUND_CHECKER_PERMISSIONS, REFUND_MAKER_PERMISSIONS, staff_user
from payments.tests.helpers import credited, post, run_together
from payments.tests.mpesa_fakes import API, B2C_TOKEN

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("mpesa_settings", "daraja")]

REVERSAL_URL = f"{API}/mpesa/reversal/v1/request"
RESULT = f"/webhooks/mpesa/reversal/result/{B2C_TOKEN}/"
MAKER, CHECKER = REFUND_MAKER_PERMISSIONS, REFUND_CHECKER_PERMISSIONS
CONVERSATION_ID = MpesaReversal.conversation_id
S = Refund.Status


@pytest.fixture
def patient():
    return PatientFactory(currency="KES", funding_goal=Decimal("1000"))


@pytest.fixture
def donation(patient):
    return paid_donation(patient=patient)


def reversal_answers(daraja, **answer):
    """Daraja's answer to the reversal request (accepted unless `answer`); the mocked endpoint."""
    return daraja.post(REVERSAL_URL, **(answer or {"json": request_accepted()}))


def sent(donation, maker, checker) -> Refund:
    refund = refund_request(donation=donation, amount=donation.amount, reason="", requested_by=maker)
    return refund_approve(refund_id=refund.pk, approved_by=checker)


def reversal_rows(donation) -> bool:
    return donation.allocations.filter(entry=Allocation.Entry.REVERSAL).exists()


# --- the whole path -------------------------------------------------------------------------------------


def test_a_refund_is_requested_approved_by_another_sent_once_and_reverses_the_ledger(daraja, patient, maker, checker):
    donation = paid_donation(patient=patient)
    patient.refresh_from_db()
    assert patient.status == Patient.Status.FULLY_FUNDED and credited(patient) == Decimal("1000")
    sent_once = reversal_answers(daraja)

    refund = refund_request(donation=donation, amount=Decimal("1000"), reason="Donor asked", requested_by=maker)
    assert refund.status == S.REQUESTED and sent_once.call_count == 0
    refund = refund_approve(refund_id=refund.pk, approved_by=checker)

    assert refund.status == S.SENT and refund.provider_reference == CONVERSATION_ID
    body = json.loads(sent_once.calls[0].request.body)
    assert body["TransactionID"] == "TL4RCPT001" and body["Amount"] == 1000
    assert body["ResultURL"] == f"https://donate.example.org{RESULT}"
    assert credited(patient) == Decimal("1000")  # nothing reversed before the result

    assert post(RESULT, reversal_result()) == (200, {"ResultCode": 0, "ResultDesc": "Accepted"})
    refund.refresh_from_db()
    donation.refresh_from_db()
    assert refund.status == S.REFUNDED and donation.status == Donation.Status.REFUNDED
    rows = list(donation.allocations.order_by("pk").values_list("entry", "amount"))
    assert rows == [("credit", Decimal("1000.00")), ("reversal", Decimal("-1000.00"))]  # history kept
    assert credited(patient) == Decimal("0")
    patient.refresh_from_db()
    assert patient.status == Patient.Status.FUNDING  # below the goal again: raising funds
    out = StringIO()
    call_command("verify_ledger", stdout=out)
    assert "Ledger OK" in out.getvalue()
    assert sent_once.call_count == 1


def test_the_ledger_reversal_itself_is_idempotent(patient, donation):
    donation_refund(donation_id=donation.pk, amount=Decimal("400"))
    donation_refund(donation_id=donation.pk, amount=Decimal("400"))
    assert credited(patient) == Decimal("600")
    donation.refresh_from_db()
    assert donation.status == Donation.Status.COMPLETED  # a partial refund leaves it completed
    assert "400" in donation.status_reason


# --- the rules ------------------------------------------------------------------------------------------


def test_the_requester_cannot_approve_even_with_both_permissions(donation):
    both = staff_user("both", *MAKER, *CHECKER)
    refund = refund_request(donation=donation, amount=Decimal("1000"), reason="", requested_by=both)
    with pytest.raises(RefundRefused, match="someone other than its requester"):
        refund_approve(refund_id=refund.pk, approved_by=both)


def test_staff_without_the_permissions_cannot_request_or_approve(donation, maker):
    clerk = staff_user("clerk", "payments.view_refund")
    with pytest.raises(RefundRefused, match="add_refund"):
        refund_request(donation=donation, amount=Decimal("1000"), reason="", requested_by=clerk)
    refund = refund_request(donation=donation, amount=Decimal("1000"), reason="", requested_by=maker)
    with pytest.raises(RefundRefused, match="approve_refund"):
        refund_approve(refund_id=refund.pk, approved_by=clerk)


@pytest.mark.parametrize(("amount", "message"), [("1001", "never refund more"), ("0", "positive"), ("500", "whole")])
def test_never_more_than_was_paid_and_mpesa_reverses_whole_payments_only(donation, maker, amount, message):
    with pytest.raises(RefundRefused, match=message):
        refund_request(donation=donation, amount=Decimal(amount), reason="", requested_by=maker)


def test_one_refund_per_donation(donation, maker):
    refund_request(donation=donation, amount=Decimal("1000"), reason="", requested_by=maker)
    with pytest.raises(RefundRefused, match="already has a refund"):
        refund_request(donation=donation, amount=Decimal("1000"), reason="", requested_by=maker)


def test_only_a_completed_donation_is_refunded(patient, maker):
    donation = donation_create(patient=patient, amount=Decimal("100"), currency="KES")
    with pytest.raises(RefundRefused, match="only a completed one"):
        refund_request(donation=donation, amount=Decimal("100"), reason="", requested_by=maker)


def test_a_refund_cannot_take_money_already_paid_out(patient, donation, maker):
    Payout.objects.create(
        reference="RHCI-PO-x", patient=patient, treatment_partner=patient.treatment_partner, msisdn="254708374149",
        amount=Decimal("800"), currency="KES", requested_by=maker, status=Payout.Status.PAID,
    )  # fmt: skip
    with pytest.raises(RefundRefused, match="not yet paid out"):
        refund_request(donation=donation, amount=Decimal("1000"), reason="", requested_by=maker)


# --- faults ---------------------------------------------------------------------------------------------


def test_a_reversal_that_times_out_after_sending_is_ambiguous_never_resent_then_resolved(
    daraja, patient, donation, maker, checker
):
    sent_once = reversal_answers(daraja, body=requests.ReadTimeout("slow"))
    refund = sent(donation, maker, checker)
    assert refund.status == S.AMBIGUOUS and refund.needs_review
    with pytest.raises(RefundRefused, match="receipt"):
        refund_resolve(refund_id=refund.pk, refunded=True, resolved_by=checker)
    refund = refund_resolve(refund_id=refund.pk, refunded=True, resolved_by=checker, receipt="TL4PORTAL9")
    assert refund.status == S.REFUNDED and refund.receipt == "TL4PORTAL9"
    assert credited(patient) == Decimal("0")
    assert sent_once.call_count == 1


@pytest.mark.parametrize(
    ("path", "result", "status", "review"),
    [
        (RESULT, reversal_result("R000002", "The OriginalTransactionID is invalid"), S.FAILED, False),
        ("/webhooks/mpesa/reversal/result/", reversal_result(), S.SENT, True),  # anyone could have sent it
    ],
    ids=["refused", "without-the-secret"],
)
def test_a_refused_or_unauthenticated_reversal_leaves_the_ledger_alone(
    daraja, patient, donation, maker, checker, path, result, status, review
):
    reversal_answers(daraja)
    refund = sent(donation, maker, checker)
    assert post(path, result)[0] == 200
    refund.refresh_from_db()
    assert refund.status == status and credited(patient) == Decimal("1000") and not reversal_rows(donation)
    assert (CallbackEvent.objects.get().status == CallbackEvent.Status.REVIEW) is review
    if status == S.FAILED:
        assert "R000002" in refund.result_desc


# --- AzamPay: no refund API -----------------------------------------------------------------------------


@pytest.mark.usefixtures("azampay_settings")
def test_an_azampay_refund_is_paid_back_outside_and_recorded_with_its_receipt(maker, checker):
    patient = PatientFactory(currency="TZS", funding_goal=Decimal("1000000"))
    donation = paid_donation(patient=patient, amount="5000", provider="azampay")
    refund = refund_request(donation=donation, amount=Decimal("2000"), reason="half back", requested_by=maker)
    assert refund.manual
    with pytest.raises(RefundRefused, match="no refund API"):
        refund_approve(refund_id=refund.pk, approved_by=checker)
    refund = refund_approve(refund_id=refund.pk, approved_by=checker, receipt="BANK-TX-77")
    assert refund.status == S.REFUNDED and refund.receipt == "BANK-TX-77"
    assert credited(patient) == Decimal("3000")
    assert len(mail.outbox) == 0  # a guest without email: nothing to send; the admin notice goes to Telegram


def test_the_donor_gets_a_notice_of_the_refund(maker, checker):
    patient = PatientFactory(currency="TZS", funding_goal=Decimal("1000000"))
    donation = paid_donation(patient=patient, amount="5000", provider="azampay", email="donor@example.org")
    mail.outbox.clear()
    refund = refund_request(donation=donation, amount=Decimal("5000"), reason="", requested_by=maker)
    with TestCase.captureOnCommitCallbacks(execute=True):
        refund_approve(refund_id=refund.pk, approved_by=checker, receipt="BANK-TX-78")
    assert [m.subject for m in mail.outbox] == [f"Your donation {donation.reference} was refunded"]
    assert "5,000" in mail.outbox[0].body


# --- at once, on MariaDB --------------------------------------------------------------------------------


def attempt(call):
    def run():
        try:
            return call()
        except RefundRefused as refused:
            return refused.message

    return run


@pytest.mark.mysql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("race", ["approvals", "requests", "reversals"])
def test_five_at_once_send_request_and_reverse_once(daraja, patient, race):
    patient.funding_goal = Decimal("100000")
    patient.save()
    donation = paid_donation(patient=patient)
    people = [staff_user(f"staff{i}", *MAKER, *CHECKER) for i in range(6)]
    sent_once = reversal_answers(daraja)
    if race == "approvals":
        refund = refund_request(donation=donation, amount=Decimal("1000"), reason="", requested_by=people[5])
        calls = [lambda c=c: refund_approve(refund_id=refund.pk, approved_by=c) for c in people[:5]]
    elif race == "requests":
        calls = [lambda m=m: refund_request(donation=donation, amount=Decimal("1000"), reason="", requested_by=m)
                 for m in people[:5]]  # fmt: skip
    else:
        calls = [lambda: donation_refund(donation_id=donation.pk, amount=Decimal("1000"))] * 5
    answers = run_together([attempt(call) for call in calls])
    if race != "reversals":
        assert sum(isinstance(a, Refund) for a in answers) == 1
        assert Refund.objects.filter(donation=donation).count() == 1
    if race == "approvals":
        assert sent_once.call_count == 1 and Refund.objects.get().status == S.SENT
        assert all("not awaiting approval" in a for a in answers if isinstance(a, str))
    if race == "reversals":
        assert Allocation.objects.filter(donation=donation, entry=Allocation.Entry.REVERSAL).count() == 1
        assert credited(patient) == Decimal("0")
