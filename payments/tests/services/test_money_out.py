"""Money out as exact as money in: the cases where a payout or refund used to be lost, settled on a word the
settings said not to trust, or left waiting in silence. Each ends in the state docs/fault-safety.md promises
("Money out"): settled once or held for a person, the book proven by verify_ledger. The providers' far sides are
`responses`; callbacks go through the real webhook URLs. The `at-once` parameters and the `mysql` tests send
copies together at a real MariaDB (skipped on SQLite)."""

import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
import requests
import responses
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from donor.models import Allocation
from patients.models import Patient
from patients.tests.factories import TreatmentPartnerFactory
from payments.models import AuditEntry, CallbackEvent, Payout, Refund
from payments.services.dispatch import money_out_apply_held
from payments.services.money_out import MoneyOutRefused
from payments.services.payouts import payout_approve, payout_request, payouts_reconcile
from payments.services.refunds import refund_approve, refund_request
from payments.services.watchdog import watchdog_alerts
from payments.tests.drivers import (
    Airtel,
    MpesaReversal,
    Mtn,
    b2c_result,
    funded_patient,
    paid_donation,
    request_accepted,
    reversal_result,
    reversals,
    sent_payout,
)
from payments.tests.helpers import run_together
from payments.tests.mpesa_fakes import API, B2C_TOKEN, B2C_URL

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("mpesa_settings")]
AT_ONCE = pytest.param(4, marks=[pytest.mark.mysql, pytest.mark.django_db(transaction=True)], id="at-once")

REVERSAL_URL = f"{API}/mpesa/reversal/v1/request"
REVERSAL_RESULT = f"/webhooks/mpesa/reversal/result/{B2C_TOKEN}/"
B2C_RESULT = f"/webhooks/mpesa/b2c/result/{B2C_TOKEN}/"
RECEIPT = "TL4RCPT001"
DARAJA_OK = {"ResultCode": 0, "ResultDesc": "Accepted"}
SETTLED = {"processed", "ignored", "duplicate", "review"}


@pytest.fixture
def trust_off(settings):
    settings.PAYMENTS_APPLY_TRUSTED_CALLBACKS = False


def deliver(path: str, body: dict, copy: int = 0) -> tuple[int, dict]:
    """One delivery; `copy` changes the bytes (not the meaning), so each is stored."""
    response = Client().post(path, data=json.dumps(body, indent=copy or None), content_type="application/json")
    return response.status_code, response.json()


def copies_at_once(path: str, body: dict, copies: int = 4) -> set[int]:
    """The statuses of `copies` deliveries of one result, each from its own thread and connection (one: here)."""
    if copies == 1:
        return {deliver(path, body)[0]}
    return {status for status, _ in run_together([lambda c=c: deliver(path, body, c) for c in range(copies)])}


def refund_of(donation, maker, amount=None) -> Refund:
    return refund_request(donation=donation, amount=amount or donation.amount, reason="Donor asked", requested_by=maker)


def sent_refund(daraja, maker, checker, **answer) -> Refund:
    """A whole-payment M-Pesa refund, approved; Daraja's answer to the reversal request accepted unless `answer`."""
    daraja.post(REVERSAL_URL, **(answer or {"json": request_accepted()}))
    return refund_approve(refund_id=refund_of(paid_donation(), maker).pk, approved_by=checker)


@pytest.fixture
def mpesa_payout(maker):
    patient = funded_patient(provider="mpesa", msisdn="254708374149", amount=Decimal("5000"), currency="KES")
    return payout_request(patient=patient, amount=Decimal("5000"), requested_by=maker)


# --- matched by what we knew before sending ----------------------------------------------------------------


@pytest.mark.parametrize("copies", [1, AT_ONCE])
def test_reversal_results_that_overtake_the_requests_answer_are_kept_and_refund_once(daraja, maker, checker, copies):
    """Daraja's result reaches us while we are still reading its answer (the ConversationID not yet stored)."""
    early = []

    def answer_after_the_result(request):
        early.append(copies_at_once(REVERSAL_RESULT, reversal_result(), copies))
        return 200, {}, json.dumps(request_accepted())

    daraja.add_callback(responses.POST, REVERSAL_URL, callback=answer_after_the_result)
    refund = refund_approve(refund_id=refund_of(paid_donation(), maker).pk, approved_by=checker)

    assert early == [{200}]  # stored and acknowledged, not thrown away as "unknown"
    assert refund.status == Refund.Status.REFUNDED and refund.provider_reference == MpesaReversal.conversation_id
    assert reversals(refund) == [Decimal("-1000")]
    events = CallbackEvent.objects.all()
    assert set(events.values_list("status", flat=True)) <= SETTLED
    assert [e.our_reference for e in events if e.status == CallbackEvent.Status.PROCESSED] == [refund.reference]
    call_command("verify_ledger")  # CommandError (the test fails) on any difference in the book


@pytest.mark.parametrize("copies", [1, AT_ONCE])
def test_a_reversal_that_timed_out_is_settled_once_by_its_results_through_the_receipt(daraja, maker, checker, copies):
    refund = sent_refund(daraja, maker, checker, body=requests.ReadTimeout("slow"))
    assert refund.status == Refund.Status.AMBIGUOUS and refund.provider_reference is None

    assert copies_at_once(REVERSAL_RESULT, reversal_result(conversation_id="AG_never_seen"), copies) == {200}
    refund.refresh_from_db()
    assert refund.status == Refund.Status.REFUNDED and not refund.needs_review
    assert refund.provider_reference == "AG_never_seen"  # learnt from the result
    assert reversals(refund) == [Decimal("-1000")]
    call_command("verify_ledger")


def test_a_result_is_matched_within_its_own_rail_only():
    """A B2C result naming the reference of an MTN payout settles nothing."""
    payout = sent_payout(
        provider="mtn", reference="RHCI-PO-mtn00000000001", msisdn="46733123470", amount=Decimal("100"),
        currency="EUR", provider_reference="3f6c1a9e-0000-4000-8000-000000000001",
    )  # fmt: skip
    deliver(B2C_RESULT, b2c_result(payout, 2001, conversation_id="AG_x"))
    payout.refresh_from_db()
    assert payout.status == Payout.Status.SENT  # still awaiting MTN's own result; funds still committed


# --- settings mean what they say ---------------------------------------------------------------------------


@pytest.mark.usefixtures("trust_off")
def test_with_trust_off_a_reversal_result_is_held_until_a_person_applies_it(daraja, maker, checker):
    refund = sent_refund(daraja, maker, checker)
    assert deliver(REVERSAL_RESULT, reversal_result())[0] == 200
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SENT and reversals(refund) == []
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REVIEW
    assert any("refund result(s) held" in alert for alert in watchdog_alerts())

    settled = money_out_apply_held(event_id=event.pk, applied_by=checker)
    assert settled.status == Refund.Status.REFUNDED and reversals(refund) == [Decimal("-1000")]
    assert AuditEntry.objects.filter(action="refund.apply_result", actor=checker).exists()
    event.refresh_from_db()
    assert event.status == CallbackEvent.Status.PROCESSED


@pytest.mark.parametrize("path", ["/webhooks/mpesa/reversal/timeout/", "/webhooks/mpesa/reversal/timeout/guess/"])
def test_an_unauthenticated_reversal_queue_timeout_moves_nothing(daraja, maker, checker, path):
    refund = sent_refund(daraja, maker, checker)
    deliver(path, reversal_result(1))
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SENT and not refund.needs_review


@pytest.mark.mysql
@pytest.mark.django_db(transaction=True)
def test_forged_and_untrusted_results_move_nothing_under_concurrency(daraja, maker, checker, settings):
    refund = sent_refund(daraja, maker, checker)
    assert copies_at_once("/webhooks/mpesa/reversal/result/not-our-secret/", reversal_result()) == {401}
    assert copies_at_once("/webhooks/mpesa/reversal/result/", reversal_result()) == {200}  # held
    settings.PAYMENTS_APPLY_TRUSTED_CALLBACKS = False
    assert copies_at_once(REVERSAL_RESULT, reversal_result()) == {200}  # held too
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SENT and not Allocation.objects.filter(entry="reversal").exists()
    call_command("verify_ledger")


@pytest.mark.mysql
@pytest.mark.django_db(transaction=True)
def test_success_and_failure_racing_settle_the_payout_one_way_and_hold_the_other(daraja, mpesa_payout, checker):
    daraja.post(B2C_URL, json=request_accepted("AG_b2c"))
    payout = payout_approve(payout_id=mpesa_payout.pk, approved_by=checker)
    results = [b2c_result(payout, code, conversation_id="AG_b2c") for code in (0, 2001, 0, 2001)]
    run_together([lambda body=body: deliver(B2C_RESULT, body) for body in results])
    payout.refresh_from_db()
    statuses = list(CallbackEvent.objects.values_list("status", flat=True))
    assert payout.status in (Payout.Status.PAID, Payout.Status.FAILED)
    assert statuses.count("processed") == 1  # one verdict applied, the contradicting ones held for a person
    assert "review" in statuses and set(statuses) <= SETTLED
    assert payout.needs_review == (payout.status == Payout.Status.FAILED)  # money moved after we said failed


@pytest.mark.mysql
@pytest.mark.django_db(transaction=True)
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
            lambda: attempt(lambda: refund_of(donation, maker, Decimal("1000"))),
        ])  # fmt: skip
        assert sum(isinstance(a, str) and "not yet paid out" in a for a in answers) == 1, answers
        Payout.objects.update(status=Payout.Status.CANCELLED)
        Refund.objects.update(status=Refund.Status.CANCELLED)


# --- nothing stuck in silence -------------------------------------------------------------------------------


def test_an_airtel_refund_answered_in_progress_goes_to_a_person_at_once(settings, maker, checker):
    from payments.tests.providers.airtel.support import REFUND_URL

    with Airtel.running(settings) as airtel:
        donation = paid_donation(provider="airtel", currency="UGX", amount="5000", receipt="MP210603.1234.L06941")
        airtel.mock.post(REFUND_URL, json={
            "data": {"transaction": {"airtel_money_id": "CI210104.1549.C00029", "status": "TIP"}},
            "status": {"code": "200", "message": "SUCCESS", "result_code": "ESB000010", "success": True},
        })  # fmt: skip
        refund = refund_approve(refund_id=refund_of(donation, maker).pk, approved_by=checker)
    assert refund.status == Refund.Status.AMBIGUOUS and refund.needs_review
    assert any("refund" in alert and "ambiguous" in alert for alert in watchdog_alerts())


def test_an_mtn_payout_stuck_sending_is_polled_by_the_id_stored_before_sending(settings, maker, checker):
    from payments.tests.providers.mtn.support import TRANSFER_URL, fixture

    def killed_mid_send(request):
        raise KeyboardInterrupt  # the process dies after the claim, before any answer is recorded

    patient = funded_patient(provider="mtn", msisdn="46733123470", amount=Decimal("150000"), currency="EUR")
    with Mtn.running(settings) as mtn:
        payout = payout_request(patient=patient, amount=Decimal("150000"), requested_by=maker)
        mtn.mock.add_callback(responses.POST, TRANSFER_URL, callback=killed_mid_send)
        with pytest.raises(KeyboardInterrupt):
            payout_approve(payout_id=payout.pk, approved_by=checker)
        payout.refresh_from_db()
        assert payout.status == Payout.Status.SENDING and payout.provider_reference  # the X-Reference-Id we chose
        assert payouts_reconcile() == 0  # not yet: it may still be sending
        Payout.objects.filter(pk=payout.pk).update(approved_at=timezone.now() - timedelta(minutes=11))
        assert any("sending" in alert for alert in watchdog_alerts())

        mtn.mock.get(f"{TRANSFER_URL}/{payout.provider_reference}", json=fixture("transfer_status_successful.json"))
        assert payouts_reconcile() == 1
    payout.refresh_from_db()
    assert payout.status == Payout.Status.PAID and payout.receipt == "363440463"


def test_the_watchdog_names_every_payout_and_refund_waiting_for_a_person(daraja, mpesa_payout, maker, checker):
    daraja.post(B2C_URL, body=requests.ReadTimeout("slow"))
    assert payout_approve(payout_id=mpesa_payout.pk, approved_by=checker).status == Payout.Status.AMBIGUOUS
    alerts = watchdog_alerts()
    assert any("1 payout(s) ambiguous" in alert for alert in alerts), alerts
    refund = refund_of(paid_donation(), maker)
    Refund.objects.filter(pk=refund.pk).update(status=Refund.Status.SENT, sent_at=timezone.now() - timedelta(hours=2))
    assert any("1 refund(s) sent more than" in alert for alert in watchdog_alerts())


# --- verify_ledger proves the whole book --------------------------------------------------------------------


def refunded_without_its_reversal(donation, maker) -> None:
    Refund.objects.filter(pk=refund_of(donation, maker).pk).update(status=Refund.Status.REFUNDED)


def completed_without_its_credit(donation, maker) -> None:
    Allocation.objects.filter(donation=donation).delete()
    Patient.objects.filter(pk=donation.patient_id).update(funding_received=0)  # the cache agrees: only the book knows


def a_reversal_without_a_refund(donation, maker) -> None:
    target = Allocation.target_for(donation.patient)
    Allocation.objects.create(donation=donation, patient=donation.patient, target=target, amount=Decimal("-1000"),
                              currency="KES", entry=Allocation.Entry.REVERSAL)  # fmt: skip
    Patient.objects.filter(pk=donation.patient_id).update(funding_received=0)


@pytest.mark.parametrize(
    ("damage", "named"),
    [(None, ""), (refunded_without_its_reversal, "reversal"), (completed_without_its_credit, "credit"),
     (a_reversal_without_a_refund, "refund")],
    ids=["clean-book", "refunded-without-reversal", "completed-without-credit", "reversal-without-refund"],
)  # fmt: skip
def test_verify_ledger_finds_what_the_book_lacks(maker, damage, named):
    donation = paid_donation()
    if damage:
        damage(donation, maker)
    out = StringIO()
    try:
        call_command("verify_ledger", stdout=out, stderr=out)
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    except Exception as error:  # CommandError: exit 1 from the command line
        code = 1
        out.write(str(error))
    assert code == (1 if damage else 0)
    if damage:
        assert donation.reference in out.getvalue() and named in out.getvalue()
