"""The money-out fault suite on a real MariaDB/MySQL: results that overtake the request's answer, arrive after
a timeout, come several times at once, out of order, forged, or with trust off; approvals racing for the same
patient's funds. Each ends as docs/fault-safety.md ("Money out") promises: settled once or held for a person,
the book proven by verify_ledger. Skipped on SQLite (conftest)."""

import json
from decimal import Decimal

import pytest
import responses
from django.core.management import call_command
from django.db import connection
from django.test import Client

from donor.models import Allocation
from patients.models import Patient
from patients.tests.factories import PatientFactory, TreatmentPartnerFactory
from payments.models import CallbackEvent, Payout, Refund
from payments.services.money_out import MoneyOutRefused
from payments.services.payouts import payout_approve, payout_request
from payments.services.refunds import refund_approve, refund_request
from payments.tests.factories import staff_user
from payments.tests.helpers import run_together
from payments.tests.mpesa_fakes import B2C_TOKEN, B2C_URL, TOKEN_URL
from payments.tests.services.test_money_out import (
    REVERSAL_RESULT,
    REVERSAL_URL,
    paid_donation,
    reversal_answer,
    reversal_result,
)

pytestmark = [pytest.mark.mysql, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("mpesa_settings")]
COPIES = 4
SETTLED = {"processed", "ignored", "duplicate", "review"}


@pytest.fixture
def maker():
    return staff_user("maker", "payments.add_refund", "payments.add_payout")


@pytest.fixture
def checker():
    perms = ("approve_refund", "resolve_refund", "approve_payout", "resolve_payout")
    return staff_user("checker", *(f"payments.{p}" for p in perms))


def deliver(path: str, body: dict, copy: int = 0) -> int:
    """One delivery from its own connection; `copy` changes the bytes (not the meaning), so each is stored."""
    data = json.dumps(body, indent=copy or None)
    try:
        return Client().post(path, data=data, content_type="application/json").status_code
    finally:
        connection.close()


def copies_at_once(path: str, body: dict) -> list[int]:
    return run_together([lambda c=c: deliver(path, body, c) for c in range(COPIES)])


def reversed_once(refund: Refund) -> bool:
    return Allocation.objects.filter(donation=refund.donation, entry=Allocation.Entry.REVERSAL).count() == 1


def ledger_ok() -> None:
    call_command("verify_ledger")  # CommandError (the test fails) on any difference in the book


def test_results_overtaking_the_answer_in_several_copies_refund_once(maker, checker):
    donation = paid_donation()
    refund = refund_request(donation=donation, amount=donation.amount, reason="", requested_by=maker)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as daraja:
        daraja.get(TOKEN_URL, json={"access_token": "t", "expires_in": "3599"})

        def answer_after_the_results(request):
            assert set(copies_at_once(REVERSAL_RESULT, reversal_result())) == {200}
            return 200, {}, json.dumps(reversal_answer())

        daraja.add_callback(responses.POST, REVERSAL_URL, callback=answer_after_the_results)
        refund = refund_approve(refund_id=refund.pk, approved_by=checker)
    assert refund.status == Refund.Status.REFUNDED and reversed_once(refund)
    assert set(CallbackEvent.objects.values_list("status", flat=True)) <= SETTLED
    ledger_ok()


def test_results_after_a_timeout_in_several_copies_refund_once(maker, checker):
    import requests

    donation = paid_donation()
    refund = refund_request(donation=donation, amount=donation.amount, reason="", requested_by=maker)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as daraja:
        daraja.get(TOKEN_URL, json={"access_token": "t", "expires_in": "3599"})
        daraja.post(REVERSAL_URL, body=requests.ReadTimeout("slow"))
        assert refund_approve(refund_id=refund.pk, approved_by=checker).status == Refund.Status.AMBIGUOUS
    assert set(copies_at_once(REVERSAL_RESULT, reversal_result(conversation_id="AG_late"))) == {200}
    refund.refresh_from_db()
    assert refund.status == Refund.Status.REFUNDED and reversed_once(refund)
    ledger_ok()


def test_success_and_failure_racing_settle_the_payout_one_way_and_hold_the_other(maker, checker):
    partner = TreatmentPartnerFactory(payout_provider="mpesa", payout_msisdn="254708374149", country="KE")
    patient = PatientFactory(currency="KES", funding_goal=Decimal("5000"), funding_received=Decimal("5000"),
                             status=Patient.Status.FULLY_FUNDED, treatment_partner=partner)  # fmt: skip
    payout = payout_request(patient=patient, amount=Decimal("5000"), requested_by=maker)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as daraja:
        daraja.get(TOKEN_URL, json={"access_token": "t", "expires_in": "3599"})
        daraja.post(B2C_URL, json=reversal_answer("AG_b2c"))
        payout = payout_approve(payout_id=payout.pk, approved_by=checker)

    def result(code: int) -> dict:
        body = {"ResultType": 0, "ResultCode": code, "ResultDesc": "d", "OriginatorConversationID": payout.reference,
                "ConversationID": "AG_b2c", "TransactionID": "SG632NMUAB"}  # fmt: skip
        if code == 0:
            body["ResultParameters"] = {"ResultParameter": [{"Key": "TransactionAmount", "Value": 5000}]}
        return {"Result": body}

    path = f"/webhooks/mpesa/b2c/result/{B2C_TOKEN}/"
    run_together([lambda c=c: deliver(path, result(c)) for c in (0, 2001, 0, 2001)])
    payout.refresh_from_db()
    statuses = list(CallbackEvent.objects.values_list("status", flat=True))
    assert payout.status in (Payout.Status.PAID, Payout.Status.FAILED)
    assert statuses.count("processed") == 1  # one verdict applied, the contradicting ones held for a person
    assert "review" in statuses and set(statuses) <= SETTLED
    assert payout.needs_review == (payout.status == Payout.Status.FAILED)  # money moved after we said failed


def test_forged_and_untrusted_results_move_nothing_under_concurrency(maker, checker, settings):
    donation = paid_donation()
    refund = refund_request(donation=donation, amount=donation.amount, reason="", requested_by=maker)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as daraja:
        daraja.get(TOKEN_URL, json={"access_token": "t", "expires_in": "3599"})
        daraja.post(REVERSAL_URL, json=reversal_answer())
        refund = refund_approve(refund_id=refund.pk, approved_by=checker)
    assert set(copies_at_once("/webhooks/mpesa/reversal/result/not-our-secret/", reversal_result())) == {401}
    assert set(copies_at_once("/webhooks/mpesa/reversal/result/", reversal_result())) == {200}  # held
    settings.PAYMENTS_APPLY_TRUSTED_CALLBACKS = False
    assert set(copies_at_once(REVERSAL_RESULT, reversal_result())) == {200}  # held too
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SENT and not Allocation.objects.filter(entry="reversal").exists()
    ledger_ok()


def test_a_payout_and_a_refund_asked_at_once_for_the_same_funds_commit_them_once(maker):
    """The one funds-available rule, under the patient's lock: 1 000 received, 1 000 asked for twice at once."""
    donation = paid_donation()
    partner = TreatmentPartnerFactory(payout_provider="mpesa", payout_msisdn="254708374149", country="KE")
    Patient.objects.filter(pk=donation.patient_id).update(treatment_partner=partner)
    patient = Patient.objects.get(pk=donation.patient_id)

    def attempt(call):
        try:
            return call()
        except MoneyOutRefused as refused:
            return refused.message

    for _ in range(3):
        answers = run_together([
            lambda: attempt(lambda: payout_request(patient=patient, amount=Decimal("1000"), requested_by=maker)),
            lambda: attempt(lambda: refund_request(donation=donation, amount=Decimal("1000"), reason="",
                                                   requested_by=maker)),
        ])  # fmt: skip
        assert sum(isinstance(a, str) and "not yet paid out" in a for a in answers) == 1, answers
        Payout.objects.update(status=Payout.Status.CANCELLED)
        Refund.objects.update(status=Refund.Status.CANCELLED)
