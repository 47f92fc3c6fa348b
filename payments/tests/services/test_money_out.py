"""Money out as exact as money in: where a payout or refund used to be lost, settled on a word the settings said
not to trust, or left waiting in silence, each ends as docs/fault-safety.md ("Money out") promises: settled once or
held for a person, the book proven by verify_ledger. The rules payouts and refunds share are written once over both
kinds (the `kind` fixture). The `at-once` and `mysql` tests send copies together at a real MariaDB."""

import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
import requests
import responses
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from donor.models import Allocation
from patients.models import Patient
from patients.tests.factories import PatientFactory, TreatmentPartnerFactory
from payments.models import CallbackEvent, Payout, Refund
from payments.services.money_out import MoneyOutRefused
from payments.services.payouts import payout_approve, payout_request, payouts_reconcile
from payments.services.refunds import refund_approve, refund_request
from payments.services.watchdog import watchdog_alerts
from payments.tests.drivers import (
    KINDS,
    Airtel,
    Mtn,
    b2c_result,
    deliver,
    deliver_together,
    encode,
    funded_patient,
    paid_donation,
    request_accepted,
    reversal_result,
    reversals,
)
from payments.tests.factories import staff_user
from payments.tests.helpers import or_refusal, run_together
from payments.tests.mpesa_fakes import ACK
from payments.tests.providers.airtel.support import REFUND_URL
from payments.tests.providers.mtn.support import TRANSFER_URL

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("mpesa_settings")]
AT_ONCE = pytest.param(4, marks=[pytest.mark.mysql, pytest.mark.django_db(transaction=True)], id="at-once")
MYSQL = [pytest.mark.mysql, pytest.mark.django_db(transaction=True)]

REVERSAL_RESULT, B2C_RESULT = KINDS["refund"].result_path, KINDS["payout"].result_path
REFUND = pytest.mark.parametrize("kind", ["refund"], indirect=True)
SETTLED = {"processed", "ignored", "duplicate", "review"}
S, E = Payout.Status, CallbackEvent.Status
INVALID = "The initiator information is invalid."


@pytest.fixture(params=KINDS)
def kind(request, daraja, maker, checker):
    """A payout or a refund (payments/tests/drivers.py: PayoutKind, RefundKind), its far side Daraja."""
    return KINDS[request.param](daraja, maker, checker)


def copies_at_once(path: str, body: dict, copies: int = 4) -> set[int]:
    """The statuses of `copies` deliveries of one result (each re-encoded, so each is stored), each from its own
    thread and connection (one: here)."""
    if copies == 1:
        return {deliver(path, body)[0]}
    return {status for status, _ in deliver_together([("post", path, encode(body, c or None)) for c in range(copies)])}


def refund_of(donation, maker) -> Refund:
    return refund_request(donation=donation, amount=donation.amount, reason="Donor asked", requested_by=maker)


def stuck_for(obj, minutes: int, **fields) -> None:
    type(obj).objects.filter(pk=obj.pk).update(approved_at=timezone.now() - timedelta(minutes=minutes), **fields)


# --- the rules every payout and refund keeps, stated once over both kinds --------------------------------------

WHO = {
    "outsider": lambda kind: get_user_model().objects.create_user("outsider", password="x"),
    "plain-staff": lambda kind: staff_user("plain-staff", f"payments.view_{kind.name}"),
    "maker": lambda kind: staff_user("maker-only", f"payments.add_{kind.name}", f"payments.view_{kind.name}"),
    "approver-only": lambda kind: staff_user("approver", f"payments.approve_{kind.name}", f"payments.view_{kind.name}"),
    "change-only": lambda kind: staff_user("changer", f"payments.change_{kind.name}"),
    "both-roles": lambda kind: staff_user("both", *(f"payments.{p}_{kind.name}" for p in ("add", "approve"))),
}
REFUSALS = [
    ("outsider", "request", "staff"),
    ("outsider", "approve", "staff"),
    ("plain-staff", "request", "add_"),
    ("plain-staff", "approve", "approve_"),
    *[(who, "resolve", "resolve_") for who in ("plain-staff", "maker", "approver-only", "change-only")],
    ("both-roles", "approve", "someone other than its requester"),  # its own request
]


@pytest.mark.parametrize(("who", "action", "message"), REFUSALS, ids=[f"{w}-{a}" for w, a, _ in REFUSALS])
def test_who_may_request_approve_and_resolve_is_checked_by_the_service(kind, who, action, message):
    """Admin powers are permissions, checked by the service itself (not only by the admin's buttons)."""
    user = WHO[who](kind)
    obj = kind.request(user if who == "both-roles" else None)
    if action == "resolve":  # stuck in sending for an hour: resolvable, but not by them
        stuck_for(obj, 60, status=S.SENDING)
    before = kind.model.objects.get().status
    with pytest.raises(MoneyOutRefused, match=message):
        if action == "request":
            kind.request(user)
        elif action == "approve":
            kind.approve(obj, user)
        else:
            kind.resolve(obj, False, user)
    assert list(kind.model.objects.values_list("status", flat=True)) == [before] and kind.sends() == 0


SEND_FAILURES = {
    "timed-out-after-sending": ({"body": requests.ReadTimeout("slow")}, S.AMBIGUOUS),  # it may have left: never resent
    "never-connected": ({"body": requests.ConnectTimeout("no route")}, S.FAILED),  # nothing left us: nothing moved
    "refused": ({"status": 400, "json": {"requestId": "x", "errorCode": "400.002.02",
                                         "errorMessage": "Bad Request - Invalid PartyB"}}, S.FAILED),
}  # fmt: skip


@pytest.mark.parametrize("failure", SEND_FAILURES)
def test_how_a_send_fails_decides_its_status_and_the_funds(kind, failure):
    answer, status = SEND_FAILURES[failure]
    kind.answers(**answer)
    obj = kind.approve(kind.request())
    assert obj.status == status and obj.needs_review is (status == S.AMBIGUOUS)
    assert kind.sends() == 1 and not kind.moved(obj)
    assert kind.available() == kind.received - (kind.amount if status == S.AMBIGUOUS else 0)
    assert any(f"1 {kind.name}(s) ambiguous" in alert for alert in watchdog_alerts()) is (status == S.AMBIGUOUS)
    if "json" in answer:
        assert "Invalid PartyB" in obj.result_desc


def test_cancelling_a_request_frees_its_funds_and_it_is_never_sent(kind):
    obj = kind.request()
    assert kind.available() == kind.received - kind.amount
    kind.cancel(obj)
    assert kind.available() == kind.received
    with pytest.raises(MoneyOutRefused, match="not awaiting approval"):
        kind.approve(obj)
    assert kind.sends() == 0


@pytest.mark.parametrize("done", [True, False], ids=["as-done", "as-failed"])
@pytest.mark.parametrize("status", [S.SENDING, S.AMBIGUOUS])  # sending: its sender died; ambiguous: its send timed out
def test_one_stuck_sending_or_ambiguous_is_resolved_by_hand_once_and_never_sent(kind, status, done):
    obj = kind.brought_to(status)
    sent = kind.sends()
    if status == S.SENDING:  # named, and resolvable, only after ten minutes
        for minutes in (0, 9):
            stuck_for(obj, minutes)
            with pytest.raises(MoneyOutRefused, match="still sending"):
                kind.resolve(obj, done, receipt=kind.receipt if done else "")
        assert not any("stuck sending" in alert for alert in watchdog_alerts())
        stuck_for(obj, 11)
        assert any(f"1 {kind.name}(s) stuck sending" in alert for alert in watchdog_alerts())
    assert (obj.needs_review, sent) == ((False, 0) if status == S.SENDING else (True, 1))
    assert kind.available() == kind.received - kind.amount  # still committed until resolved
    with pytest.raises(MoneyOutRefused, match="receipt"):
        kind.resolve(obj, True)
    obj = kind.resolve(obj, done, receipt=f" {kind.receipt} " if done else "")
    assert (obj.status, obj.receipt, obj.needs_review) == (
        (kind.model.DONE, kind.receipt, False) if done else (S.FAILED, "", False)
    )
    assert kind.moved(obj) is done and kind.available() == kind.received - (kind.amount if done else 0)
    with pytest.raises(MoneyOutRefused, match="nothing to resolve"):
        kind.resolve(obj, False)
    assert kind.sends() == sent  # resolving never sends


@pytest.mark.parametrize("at_once", [pytest.param(5, marks=MYSQL, id="five-checkers-at-once")])
def test_approvals_at_once_send_it_once(kind, at_once):
    obj = kind.request()
    checkers = [staff_user(f"checker{i}", f"payments.approve_{kind.name}") for i in range(at_once)]
    kind.answers()
    answers = run_together([or_refusal(lambda user=user: kind.approve(obj, user).status) for user in checkers])
    assert answers.count(S.SENT) == 1 and all("not awaiting approval" in a for a in answers if a != S.SENT)
    assert kind.sends() == 1 and kind.model.objects.get().status == S.SENT


AWAITING, NOT_SENT = [S.SENDING, S.SENT, S.AMBIGUOUS], [S.REQUESTED, S.CANCELLED, S.FAILED]
# (its status, Daraja's result) → (its status after, flagged for review, the event, its amount still committed)
RESULTS = [
    *[(status, "paid", "done", False, E.PROCESSED, True) for status in AWAITING],
    *[(status, "failed", S.FAILED, False, E.PROCESSED, False) for status in AWAITING],
    (S.SENT, "queue-timeout", S.AMBIGUOUS, True, E.PROCESSED, True),
]
# One we did not send: held, never applied; flagged when money moved for it (or one we called failed). A refund is
# found by the receipt its reversal names.
HELD = [
    *[(status, "paid", status, True, E.REVIEW, status == S.REQUESTED) for status in NOT_SENT],
    *[(status, "failed", status, False, E.REVIEW, status == S.REQUESTED) for status in NOT_SENT],
    *[(status, "queue-timeout", status, False, E.REVIEW, status == S.REQUESTED) for status in NOT_SENT[:2]],
]
# A refund keeps no result code (a reversal result has none), so a failure on a failed refund is that same failure.
REFUND_HELD = [(*row[:4], E.IGNORED, row[5]) if row[:2] == (S.FAILED, "failed") else row for row in HELD]
CASES = [("payout", *row) for row in RESULTS + HELD] + [("refund", *row) for row in RESULTS + REFUND_HELD]


@pytest.mark.parametrize(
    ("kind", "before", "says", "after", "review", "event", "committed"),
    CASES,
    ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES],
    indirect=["kind"],
)
def test_a_result_on_the_secret_url_by_its_status(kind, before, says, after, review, event, committed):
    obj = kind.brought_to(before)
    fields = ("status", "receipt", "result_code", "completed_at", "provider_reference")
    unchanged = kind.model.objects.values(*fields).get(pk=obj.pk)
    path = kind.timeout_path if says == "queue-timeout" else kind.result_path
    assert deliver(path, kind.result(obj, says, INVALID)) == (200, ACK)

    obj.refresh_from_db()
    done = after == "done"
    assert (obj.status, obj.needs_review) == (kind.model.DONE if done else after, review)
    assert CallbackEvent.objects.get().status == event
    assert kind.available() == kind.received - (kind.amount if committed else 0)
    assert kind.moved(obj) is done
    assert kind.sends() == (before in (S.SENT, S.AMBIGUOUS, S.FAILED))  # never (re-)sent by a result
    if event != E.PROCESSED:  # held, or the same failure again: nothing about it changed
        assert kind.model.objects.values(*fields).get(pk=obj.pk) == unchanged
    if event == E.REVIEW:
        what = "queue timeout" if says == "queue-timeout" else "result"
        assert CallbackEvent.objects.get().error == f"{what} for {kind.name} {obj.reference} in {before}"
    elif done:
        code = kind.recorded("paid", INVALID)[0]
        assert (obj.receipt, obj.result_code, obj.provider_reference) == (kind.receipt, code, kind.conversation_id)
        assert obj.completed_at is not None
    elif event == E.PROCESSED and after == S.FAILED:
        assert (obj.result_code, obj.result_desc) == kind.recorded("failed", INVALID)


def test_a_result_without_the_secret_is_held_and_a_queue_timeout_without_it_moves_nothing(kind):
    obj = kind.brought_to(S.SENT)
    unsigned = kind.result_path.removesuffix(f"{kind.result_path.split('/')[-2]}/")
    assert deliver(unsigned, kind.result(obj, "paid")) == (200, ACK)  # anyone could have sent it
    assert CallbackEvent.objects.get().status == E.REVIEW
    timeout = kind.timeout_path.removesuffix(f"{kind.timeout_path.split('/')[-2]}/")
    for path in (timeout, f"{timeout}guess/"):
        deliver(path, kind.result(obj, "queue-timeout"))
    obj.refresh_from_db()
    assert (obj.status, obj.needs_review) == (S.SENT, False) and not kind.moved(obj)
    kind.model.objects.filter(pk=obj.pk).update(sent_at=timezone.now() - timedelta(hours=2))
    assert any(f"1 {kind.name}(s) sent more than an hour ago" in alert for alert in watchdog_alerts())


# --- matched by what we knew before sending ----------------------------------------------------------------


@REFUND
@pytest.mark.parametrize("copies", [1, AT_ONCE])
@pytest.mark.parametrize("when", ["overtaking-the-requests-answer", "after-its-send-timed-out"])
def test_reversal_results_naming_an_id_not_stored_are_kept_and_refund_once_through_the_receipt(kind, copies, when):
    """Daraja's result reaches us while we are still reading its answer, or after the send timed out: either way
    its ConversationID is not stored yet."""
    early = []

    def answer_after_the_result(request):
        early.append(copies_at_once(REVERSAL_RESULT, reversal_result(conversation_id="AG_never_seen"), copies))
        return 200, {}, json.dumps(request_accepted("AG_never_seen"))

    if when == "overtaking-the-requests-answer":
        kind.daraja.add_callback(responses.POST, kind.send_url, callback=answer_after_the_result)
        refund = kind.approve(kind.request())
    else:
        refund = kind.brought_to(S.AMBIGUOUS)
        assert refund.provider_reference is None and not early
        answer_after_the_result(None)
        refund.refresh_from_db()
    assert early == [{200}]  # stored and acknowledged, not thrown away as "unknown"
    assert (refund.status, refund.needs_review) == (Refund.Status.REFUNDED, False)
    assert refund.provider_reference == "AG_never_seen" and reversals(refund) == [Decimal("-1000")]
    events = CallbackEvent.objects.all()
    assert set(events.values_list("status", flat=True)) <= SETTLED
    assert [e.our_reference for e in events if e.status == CallbackEvent.Status.PROCESSED] == [refund.reference]
    call_command("verify_ledger")  # CommandError (the test fails) on any difference in the book


@pytest.mark.parametrize("rail", ["mtn-transfer"], indirect=True)
def test_a_result_is_matched_within_its_own_rail_only(rail):
    """A B2C result naming the reference of an MTN payout settles nothing."""
    payout = rail.subject()
    deliver(B2C_RESULT, b2c_result(payout, 2001, conversation_id="AG_x"))
    rail.untouched(payout)  # still awaiting MTN's own result; funds still committed


# --- settings mean what they say ---------------------------------------------------------------------------


@REFUND
@pytest.mark.mysql
@pytest.mark.django_db(transaction=True)
def test_forged_and_untrusted_results_move_nothing_under_concurrency(kind, settings):
    refund = kind.brought_to(S.SENT)
    assert copies_at_once("/webhooks/mpesa/reversal/result/not-our-secret/", reversal_result()) == {401}
    assert copies_at_once("/webhooks/mpesa/reversal/result/", reversal_result()) == {200}  # held
    settings.PAYMENTS_APPLY_TRUSTED_CALLBACKS = False
    assert copies_at_once(REVERSAL_RESULT, reversal_result()) == {200}  # held too
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SENT and not Allocation.objects.filter(entry="reversal").exists()
    call_command("verify_ledger")


@pytest.mark.mysql
@pytest.mark.django_db(transaction=True)
def test_success_and_failure_racing_settle_it_one_way_and_hold_the_other(kind):
    obj = kind.brought_to(S.SENT)
    run_together(
        [lambda says=says: deliver(kind.result_path, kind.result(obj, says)) for says in ["paid", "failed"] * 2]
    )
    obj.refresh_from_db()
    statuses = list(CallbackEvent.objects.values_list("status", flat=True))
    assert obj.status in (kind.model.DONE, S.FAILED) and kind.moved(obj) is (obj.status == kind.model.DONE)
    assert statuses.count("processed") == 1  # one verdict applied, the contradicting ones held for a person
    assert "review" in statuses and set(statuses) <= SETTLED
    assert obj.needs_review == (obj.status == S.FAILED)  # money moved after we said failed


@pytest.mark.mysql
@pytest.mark.django_db(transaction=True)
def test_a_payout_and_a_refund_asked_at_once_for_the_same_funds_commit_them_once(maker):
    """The one funds-available rule, under the patient's lock: 1 000 received, 1 000 asked for twice at once."""
    partner = TreatmentPartnerFactory(payout_provider="mpesa", payout_msisdn="254708374149", country="KE")
    patient = PatientFactory(currency="KES", funding_goal=Decimal("1000000"), treatment_partner=partner)
    donation = paid_donation(patient=patient)
    for _ in range(3):
        answers = run_together([
            or_refusal(lambda: payout_request(patient=patient, amount=Decimal("1000"), requested_by=maker)),
            or_refusal(lambda: refund_of(donation, maker)),
        ])  # fmt: skip
        assert sum(isinstance(a, str) and "not yet paid out" in a for a in answers) == 1, answers
        Payout.objects.update(status=Payout.Status.CANCELLED)
        Refund.objects.update(status=Refund.Status.CANCELLED)


# --- nothing stuck in silence -------------------------------------------------------------------------------


def test_an_airtel_refund_answered_in_progress_goes_to_a_person_at_once(settings, maker, checker):
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
        stuck_for(payout, 11)
        assert any("sending" in alert for alert in watchdog_alerts())

        mtn.mock.get(f"{TRANSFER_URL}/{payout.provider_reference}", json=mtn.fixture("transfer_status_successful.json"))
        assert payouts_reconcile() == 1
    payout.refresh_from_db()
    assert payout.status == Payout.Status.PAID and payout.receipt == "363440463"


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
    [(refunded_without_its_reversal, "reversal"), (completed_without_its_credit, "credit"),
     (a_reversal_without_a_refund, "refund")],
    ids=["refunded-without-reversal", "completed-without-credit", "reversal-without-refund"],
)  # fmt: skip
def test_verify_ledger_finds_what_the_book_lacks(maker, damage, named):
    """A clean book is "Ledger OK" (test_refunds.py::test_a_refund_is_requested_approved_by_another_…)."""
    donation = paid_donation()
    damage(donation, maker)
    out = StringIO()
    with pytest.raises(CommandError, match="1 item.s. in the book disagree") as failed:
        call_command("verify_ledger", stdout=out)
    assert failed.value.returncode == 1  # exit 1 from the command line
    assert f"BOOK {donation.reference}" in out.getvalue() and named in out.getvalue()
