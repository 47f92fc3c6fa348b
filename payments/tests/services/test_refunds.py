"""Refunds: the ledger reversed by new rows (never an edit), never more than was paid, never twice; AzamPay has no
refund API, so its refunds are recorded by hand. What every refund rail does with its result callback is
test_pipeline_money_out.py's; the rules refunds share with payouts are test_money_out.py's."""

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import TestCase

from donor.models import Allocation, Donation
from donor.services import donation_create, donation_refund
from patients.models import Patient
from patients.tests.factories import PatientFactory
from payments.models import Payout, Refund
from payments.services.refunds import RefundRefused, refund_approve, refund_request
from payments.tests.drivers import MpesaReversal, RefundKind, paid_donation, request_accepted, reversal_result
from payments.tests.factories import REFUND_MAKER_PERMISSIONS, staff_user
from payments.tests.helpers import credited, or_refusal, post, run_together
from payments.tests.mpesa_fakes import ACK, SITE_URL

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("mpesa_settings", "daraja")]

REVERSAL_URL, RESULT = RefundKind.send_url, MpesaReversal.result_path
S = Refund.Status


@pytest.fixture
def patient():
    return PatientFactory(currency="KES", funding_goal=Decimal("1000"))


@pytest.fixture
def donation(patient):
    return paid_donation(patient=patient)


# --- the whole path -------------------------------------------------------------------------------------


def test_a_refund_is_requested_approved_by_another_sent_once_and_reverses_the_ledger(daraja, patient, maker, checker):
    """Its own steps; settled once with its reversal row is every rail's (test_pipeline_money_out.py), the rules
    on the way test_money_out.py's."""
    donation = paid_donation(patient=patient)
    patient.refresh_from_db()
    assert patient.status == Patient.Status.FULLY_FUNDED and credited(patient) == Decimal("1000")
    sent_once = daraja.post(REVERSAL_URL, json=request_accepted())

    refund = refund_request(donation=donation, amount=Decimal("1000"), reason="Donor asked", requested_by=maker)
    refund = refund_approve(refund_id=refund.pk, approved_by=checker)
    assert refund.status == S.SENT and refund.provider_reference == MpesaReversal.conversation_id
    body = json.loads(sent_once.calls[0].request.body)
    assert (body["TransactionID"], body["Amount"], body["ResultURL"]) == ("TL4RCPT001", 1000, f"{SITE_URL}{RESULT}")
    assert credited(patient) == Decimal("1000")  # nothing reversed before the result

    assert post(RESULT, reversal_result()) == (200, ACK)
    rows = list(donation.allocations.order_by("pk").values_list("entry", "amount"))
    assert rows == [("credit", Decimal("1000.00")), ("reversal", Decimal("-1000.00"))]  # history kept
    patient.refresh_from_db()
    assert (patient.status, patient.funding_received) == (Patient.Status.FUNDING, 0)  # below the goal: raising funds
    out = StringIO()
    call_command("verify_ledger", stdout=out)
    assert "Ledger OK" in out.getvalue() and sent_once.call_count == 1


def test_the_ledger_reversal_itself_is_idempotent(patient, donation):
    donation_refund(donation_id=donation.pk, amount=Decimal("400"))
    donation_refund(donation_id=donation.pk, amount=Decimal("400"))
    assert credited(patient) == Decimal("600")
    donation.refresh_from_db()
    assert donation.status == Donation.Status.COMPLETED  # a partial refund leaves it completed
    assert "400" in donation.status_reason


# --- the rules ------------------------------------------------------------------------------------------


def another_refund(donation, maker) -> None:
    refund_request(donation=donation, amount=Decimal("1000"), reason="", requested_by=maker)


def paid_out(donation, maker) -> None:
    patient = donation.patient
    Payout.objects.create(
        reference="RHCI-PO-x", patient=patient, treatment_partner=patient.treatment_partner, msisdn="254708374149",
        amount=Decimal("800"), currency="KES", requested_by=maker, status=Payout.Status.PAID,
    )  # fmt: skip


REFUSED = {
    "more-than-paid": (None, "1001", "never refund more"),
    "not-positive": (None, "0", "positive"),
    "part-of-an-mpesa-payment": (None, "500", "whole"),  # M-Pesa reverses whole payments only
    "a-second-refund": (another_refund, "1000", "already has a refund"),
    "of-a-donation-not-completed": ("pending", "100", "only a completed one"),
    "of-money-already-paid-out": (paid_out, "1000", "not yet paid out"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_refund_request_is_refused(patient, donation, maker, case):
    before, amount, message = REFUSED[case]
    if before == "pending":
        donation = donation_create(patient=patient, amount=Decimal("100"), currency="KES")
    elif before:
        before(donation, maker)
    with pytest.raises(RefundRefused, match=message):
        refund_request(donation=donation, amount=Decimal(amount), reason="", requested_by=maker)


# --- AzamPay: no refund API -----------------------------------------------------------------------------


@pytest.mark.usefixtures("azampay_settings")
@pytest.mark.parametrize("email", ["", "donor@example.org"], ids=["guest-without-email", "donor-with-email"])
def test_an_azampay_refund_is_paid_back_outside_recorded_with_its_receipt_and_the_donor_told(maker, checker, email):
    patient = PatientFactory(currency="TZS", funding_goal=Decimal("1000000"))
    donation = paid_donation(patient=patient, amount="5000", provider="azampay", email=email)
    mail.outbox.clear()
    refund = refund_request(donation=donation, amount=Decimal("2000"), reason="half back", requested_by=maker)
    assert refund.manual
    with pytest.raises(RefundRefused, match="no refund API"):
        refund_approve(refund_id=refund.pk, approved_by=checker)
    with TestCase.captureOnCommitCallbacks(execute=True):
        refund = refund_approve(refund_id=refund.pk, approved_by=checker, receipt="BANK-TX-77")
    assert refund.status == S.REFUNDED and refund.receipt == "BANK-TX-77"
    assert credited(patient) == Decimal("3000")
    # A guest without email: nothing to send (the admin notice goes to Telegram).
    assert [m.subject for m in mail.outbox] == ([f"Your donation {donation.reference} was refunded"] if email else [])
    assert not email or "2,000" in mail.outbox[0].body


# --- at once, on MariaDB --------------------------------------------------------------------------------


@pytest.mark.mysql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("race", "refunds", "reversals"), [("requests", 1, 0), ("reversals", 0, 1)])
def test_five_at_once_request_and_reverse_once(daraja, race, refunds, reversals):
    """Five approvals at once are test_money_out.py's, for both kinds."""
    donation = paid_donation()
    makers = [staff_user(f"staff{i}", *REFUND_MAKER_PERMISSIONS) for i in range(5)]
    if race == "requests":
        calls = [lambda m=m: refund_request(donation=donation, amount=Decimal("1000"), reason="", requested_by=m)
                 for m in makers]  # fmt: skip
    else:
        calls = [lambda: donation_refund(donation_id=donation.pk, amount=Decimal("1000"))] * 5
    answers = run_together([or_refusal(call) for call in calls])
    assert sum(isinstance(a, Refund) for a in answers) == Refund.objects.filter(donation=donation).count() == refunds
    assert Allocation.objects.filter(donation=donation, entry=Allocation.Entry.REVERSAL).count() == reversals
    assert credited(donation.patient) == Decimal("1000") * (1 - reversals)
