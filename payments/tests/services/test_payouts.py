"""Payouts (M-Pesa B2C) to treatment partners under maker-checker: requested by one staff user, approved and
sent once by another; results applied only to the one payout they name exactly, and only to a payout we sent.

A result settles a payout in `sending`, `sent` or `ambiguous`; for any other payout it is held for review. An
empty id never matches (a filter on it would match every payout without one). A send that times out after
the result already settled the payout leaves it settled. Daraja is mocked with `responses`. What every payout
rail does with its result callback (settled once, copies, forged, malformed) is test_pipeline_money_out.py's;
the admin's payout actions are in payments/tests/test_admin.py.
"""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
import responses
from django.contrib.auth import get_user_model
from django.utils import timezone

from patients.models import Patient
from patients.tests.factories import PatientFactory, TreatmentPartnerFactory
from payments.models import CallbackEvent, Payout
from payments.services.payouts import (
    PayoutRefused,
    payout_approve,
    payout_available,
    payout_cancel,
    payout_request,
    payout_resolve,
)
from payments.tests.drivers import MpesaB2C, b2c_result, funded_patient
from payments.tests.factories import CHECKER_PERMISSIONS, MAKER_PERMISSIONS, staff_user
from payments.tests.helpers import post, run_together
from payments.tests.mpesa_fakes import ACK, B2C_TOKEN, B2C_URL, SITE_URL

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("mpesa_settings", "daraja")]

RESULT = f"/webhooks/mpesa/b2c/result/{B2C_TOKEN}/"
TIMEOUT = f"/webhooks/mpesa/b2c/timeout/{B2C_TOKEN}/"
CONVERSATION_ID = MpesaB2C.conversation_id
INVALID = "The initiator information is invalid."
S = Payout.Status


@pytest.fixture
def patient():
    """Fully funded, with a treatment partner paid through M-Pesa."""
    return funded_patient(provider="mpesa", msisdn="254708374149", amount=Decimal("50000"), currency="KES")


def b2c_answers(daraja, status: int = 200, conversation_id: str | None = CONVERSATION_ID, **kwargs) -> None:
    """What Daraja answers the next B2C request with (replacing any earlier answer): accepted unless `kwargs`."""
    body = {"OriginatorConversationID": "ignored", "ResponseCode": "0",
            "ResponseDescription": "Accept the service request successfully."}  # fmt: skip
    if conversation_id is not None:
        body["ConversationID"] = conversation_id
    daraja.remove(responses.POST, B2C_URL)
    daraja.add(responses.POST, B2C_URL, status=status, **(kwargs or {"json": body}))


def b2c_calls(daraja) -> list:
    return [c for c in daraja.calls if c.request.url == B2C_URL]


def snapshot() -> list[dict]:
    return list(Payout.objects.order_by("pk").values())


def fresh(payout: Payout) -> Payout:
    payout.refresh_from_db()
    return payout


def patient_status(patient: Patient) -> str:
    patient.refresh_from_db()
    return patient.status


@pytest.fixture
def payout_in(daraja, patient, maker, checker):
    """A payout brought to `status` the way it happens (sending: the sending process died)."""

    def make(status: str, amount: str = "1000") -> Payout:
        payout = payout_request(patient=patient, amount=Decimal(amount), requested_by=maker)
        if status == S.REQUESTED:
            return payout
        if status == S.CANCELLED:
            return payout_cancel(payout_id=payout.pk, cancelled_by=checker)
        if status == S.SENDING:
            Payout.objects.filter(pk=payout.pk).update(status=S.SENDING, approved_by=checker,
                                                       approved_at=timezone.now())  # fmt: skip
            return fresh(payout)
        answers = {
            S.SENT: {},
            S.AMBIGUOUS: {"body": requests.ReadTimeout("slow")},
            S.FAILED: {"body": requests.ConnectTimeout("no route")},
        }
        b2c_answers(daraja, **answers[status])
        payout = payout_approve(payout_id=payout.pk, approved_by=checker)
        assert payout.status == status
        return payout

    return make


# --- an empty or unknown id matches nothing ---------------------------------------------------------------


@pytest.mark.parametrize("path", [RESULT, TIMEOUT])
@pytest.mark.parametrize(
    "ids",
    [
        {"originator": "RHCI-PO-unknown0000000", "conversation_id": ""},
        {"originator": "RHCI-PO-unknown0000000", "conversation_id": "   "},
        {"originator": "RHCI-PO-unknown0000000", "conversation_id": None},
        {"originator": "", "conversation_id": "AG_20240101_unknown"},
    ],
    ids=["empty-conversation-id", "blank-conversation-id", "null-conversation-id", "unknown-conversation-id"],
)
def test_a_result_with_no_usable_id_matches_no_payout_even_while_payouts_without_one_exist(
    daraja, payout_in, checker, path, ids
):
    """Not even a payout whose conversation id is '' rather than NULL (an old row, a hand edit)."""
    without_id = [payout_in(status, "100") for status in (S.REQUESTED, S.SENDING, S.AMBIGUOUS)]
    b2c_answers(daraja, conversation_id=None)
    without_id.append(payout_approve(payout_id=payout_in(S.REQUESTED, "100").pk, approved_by=checker))
    assert without_id[-1].status == S.SENT
    Payout.objects.filter(pk=payout_in(S.SENT, "100").pk).update(provider_reference="")
    assert sorted(Payout.objects.values_list("provider_reference", flat=True), key=str) == ["", *[None] * 4]
    before = snapshot()

    # Authentic (our secret URL) but naming nothing we know: kept unsettled for a later match, nothing applied.
    assert post(path, b2c_result(without_id[0], **ids)) == (200, ACK)
    assert snapshot() == before
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.FAILED and event.error == "names no payout we know yet"


def test_a_result_naming_an_unknown_originator_and_a_known_conversation_id_settles_that_payout(payout_in):
    """The contrast: M-Pesa's ConversationID is the fallback when our OriginatorConversationID is not echoed."""
    payout, other = payout_in(S.SENT), payout_in(S.REQUESTED)
    assert post(RESULT, b2c_result(payout, originator="not-ours")) == (200, ACK)
    assert (fresh(payout).status, payout.receipt) == (S.PAID, "SG632NMUAB")
    assert fresh(other).status == S.REQUESTED


def test_a_result_settles_only_the_payout_it_names(payout_in):
    first, second = payout_in(S.AMBIGUOUS, "100"), payout_in(S.AMBIGUOUS, "100")
    assert post(RESULT, b2c_result(second, conversation_id="AG_20240706_second")) == (200, ACK)
    assert (fresh(first).status, first.provider_reference) == (S.AMBIGUOUS, None)
    assert (fresh(second).status, second.provider_reference) == (S.PAID, "AG_20240706_second")


def test_a_result_without_the_secret_is_held_for_review_or_404_when_it_names_no_payout(payout_in):
    payout = payout_in(S.REQUESTED)
    assert post("/webhooks/mpesa/b2c/result/", b2c_result(payout)) == (200, ACK)
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REVIEW
    assert fresh(payout).status == S.REQUESTED
    unknown = {"Result": {"ResultCode": 0, "OriginatorConversationID": "nope", "ConversationID": "AG_y"}}
    assert post("/webhooks/mpesa/b2c/result/", unknown)[0] == 404


# --- what a result does, by the payout's status -------------------------------------------------------------

AWAITING = [S.SENDING, S.SENT, S.AMBIGUOUS]
NOT_SENT = [S.REQUESTED, S.CANCELLED, S.FAILED]
COMMITTED = {S.REQUESTED: "49000", S.SENDING: "49000", S.SENT: "49000", S.AMBIGUOUS: "49000",
             S.CANCELLED: "50000", S.FAILED: "50000"}  # fmt: skip
PAID, FAILED, TIMED_OUT = 0, 2001, 1  # Daraja's ResultCode (1: its queue timeout, on the timeout URL)
SAYS = {PAID: "paid", FAILED: "failed", TIMED_OUT: "queue-timeout"}
E = CallbackEvent.Status
# (the payout's status, Daraja's result) → (its status after, flagged for review, the event, funds available)
RESULTS = [
    *[(status, PAID, S.PAID, False, E.PROCESSED, "49000") for status in AWAITING],
    *[(status, FAILED, S.FAILED, False, E.PROCESSED, "50000") for status in AWAITING],
    (S.SENT, TIMED_OUT, S.AMBIGUOUS, True, E.PROCESSED, "49000"),
    # A payout we did not send: held, never applied; flagged when money moved for it (or one we called failed).
    *[(status, PAID, status, True, E.REVIEW, COMMITTED[status]) for status in NOT_SENT],
    *[(status, FAILED, status, False, E.REVIEW, COMMITTED[status]) for status in NOT_SENT],
    *[(status, TIMED_OUT, status, False, E.REVIEW, COMMITTED[status]) for status in (S.REQUESTED, S.CANCELLED)],
]


@pytest.mark.parametrize(
    ("before", "code", "after", "review", "event", "available"),
    RESULTS,
    ids=[f"{r[0]}-{SAYS[r[1]]}" for r in RESULTS],
)
def test_a_result_on_the_secret_url_by_the_payouts_status(
    daraja, patient, payout_in, before, code, after, review, event, available
):
    payout = payout_in(before)
    fields = ("status", "receipt", "result_code", "completed_at", "provider_reference")
    unchanged = Payout.objects.values(*fields).get(pk=payout.pk)
    assert post(TIMEOUT if code == TIMED_OUT else RESULT, b2c_result(payout, code=code, desc=INVALID)) == (200, ACK)

    assert (fresh(payout).status, payout.needs_review) == (after, review)
    assert CallbackEvent.objects.get().status == event
    assert payout_available(patient=patient) == Decimal(available)
    funded = Patient.Status.IN_TREATMENT if after == S.PAID else Patient.Status.FULLY_FUNDED
    assert patient_status(patient) == funded
    assert len(b2c_calls(daraja)) == (before in (S.SENT, S.AMBIGUOUS, S.FAILED))  # never (re-)sent by a result
    if event == E.REVIEW:
        assert Payout.objects.values(*fields).get(pk=payout.pk) == unchanged
        what = "queue timeout" if code == TIMED_OUT else "result"
        assert CallbackEvent.objects.get().error == f"{what} for payout {payout.reference} in {before}"
    elif after == S.PAID:
        assert (payout.receipt, payout.result_code, payout.provider_reference) == ("SG632NMUAB", "0", CONVERSATION_ID)
        assert payout.completed_at is not None
    elif after == S.FAILED:
        assert (payout.result_code, payout.result_desc) == ("2001", INVALID)


@pytest.mark.parametrize(
    ("change", "field"),
    [({"ResultCode": 2001, "ResultDesc": INVALID}, "failure"), ({"TransactionID": "SG999OTHER"}, "receipt")],
    ids=["failure", "another-receipt"],
)
def test_a_different_result_after_paid_is_held_and_the_payout_stays_paid(payout_in, change, field):
    payout = payout_in(S.SENT)
    assert post(RESULT, b2c_result(payout)) == (200, ACK)
    other = b2c_result(payout)
    other["Result"].update(change)
    assert post(RESULT, other) == (200, ACK)
    assert (fresh(payout).status, payout.receipt, payout.result_code) == (S.PAID, "SG632NMUAB", "0")
    assert CallbackEvent.objects.order_by("pk").last().status == CallbackEvent.Status.REVIEW


def test_the_same_result_again_after_its_first_handling_died_is_ignored_not_sent_to_review(payout_in):
    """The first delivery paid the payout but its worker died before settling the inbox row: the provider's
    resend (a copy of an unsettled delivery, so handled again) finds the payout paid by that same result."""
    payout = payout_in(S.SENT)
    body = json.dumps(b2c_result(payout)).encode()
    assert post(RESULT, body) == (200, ACK)
    CallbackEvent.objects.update(status=CallbackEvent.Status.RECEIVED)  # as if the mark never committed
    assert post(RESULT, body) == (200, ACK)
    assert CallbackEvent.objects.order_by("pk").last().status == CallbackEvent.Status.IGNORED
    assert (fresh(payout).status, payout.needs_review) == (S.PAID, False)


# --- resolving a payout stuck in `sending` or ambiguous by hand ---------------------------------------------


def stuck_for(payout: Payout, minutes: int) -> None:
    Payout.objects.filter(pk=payout.pk).update(approved_at=timezone.now() - timedelta(minutes=minutes))


@pytest.mark.parametrize("minutes", [0, 9])
def test_a_payout_sending_for_less_than_ten_minutes_cannot_be_resolved(payout_in, checker, minutes):
    payout = payout_in(S.SENDING)
    stuck_for(payout, minutes)
    for paid in (False, True):
        with pytest.raises(PayoutRefused, match="still sending"):
            payout_resolve(payout_id=payout.pk, paid=paid, resolved_by=checker, receipt="SG632NMUAB" if paid else "")
    assert fresh(payout).status == S.SENDING


@pytest.mark.parametrize("paid", [True, False], ids=["as-paid", "as-failed"])
def test_a_payout_stuck_in_sending_for_over_ten_minutes_can_be_resolved(daraja, patient, payout_in, checker, paid):
    payout = payout_in(S.SENDING)
    stuck_for(payout, 11)
    payout = payout_resolve(payout_id=payout.pk, paid=paid, resolved_by=checker, receipt=" SG632NMUAB " if paid else "")
    if paid:
        assert (payout.status, payout.receipt, payout.needs_review) == (S.PAID, "SG632NMUAB", False)
        assert patient_status(patient) == Patient.Status.IN_TREATMENT
    else:
        assert payout.status == S.FAILED and payout_available(patient=patient) == Decimal("50000")
    assert b2c_calls(daraja) == []  # resolving never sends


@pytest.mark.parametrize(
    "permissions",
    [MAKER_PERMISSIONS, ("payments.approve_payout", "payments.view_payout"), ("payments.change_payout",)],
    ids=["maker", "approver-only", "change-only"],
)
def test_resolving_a_stuck_payout_needs_the_resolve_permission(payout_in, permissions):
    payout = payout_in(S.SENDING)
    stuck_for(payout, 60)
    with pytest.raises(PayoutRefused, match="resolve_payout"):
        payout_resolve(payout_id=payout.pk, paid=False, resolved_by=staff_user("someone", *permissions))
    assert fresh(payout).status == S.SENDING


def test_an_ambiguous_payout_is_resolved_by_hand_with_its_receipt_once(daraja, patient, payout_in, checker):
    payout = payout_in(S.AMBIGUOUS)
    assert payout.needs_review and len(b2c_calls(daraja)) == 1
    assert payout_available(patient=patient) == Decimal("49000")  # still committed until resolved
    with pytest.raises(PayoutRefused, match="receipt"):
        payout_resolve(payout_id=payout.pk, paid=True, resolved_by=checker)
    payout = payout_resolve(payout_id=payout.pk, paid=True, resolved_by=checker, receipt="SG632NMUAB")
    assert payout.status == S.PAID and not payout.needs_review
    assert patient_status(patient) == Patient.Status.IN_TREATMENT
    with pytest.raises(PayoutRefused, match="nothing to resolve"):
        payout_resolve(payout_id=payout.pk, paid=False, resolved_by=checker)
    assert len(b2c_calls(daraja)) == 1


# --- the send's answer comes after the result ----------------------------------------------------------------


def result_then(daraja, *, code: int, then):
    """Daraja's answer to the B2C request: first the result callback arrives (through the webhook), then
    `then` (an exception to raise, or a (status, headers, body) answer)."""
    answers: list = []

    def callback(request):
        payout = Payout.objects.get(reference=json.loads(request.body)["OriginatorConversationID"])
        answers.append(post(RESULT, b2c_result(payout, code=code, desc="Result before the answer")))
        if isinstance(then, BaseException):
            raise then
        return then

    daraja.remove(responses.POST, B2C_URL)
    daraja.add_callback(responses.POST, B2C_URL, callback=callback)
    return answers


LATE_ANSWERS = {
    "read-timeout": requests.ReadTimeout("slow"),
    "connection-reset": requests.ConnectionError("connection reset by peer"),
    "connect-timeout": requests.ConnectTimeout("no route"),
    "http-500": (500, {}, json.dumps({"errorCode": "500.003.02", "errorMessage": "System is busy"})),
    "accepted": (200, {}, json.dumps({"ConversationID": "AG_late", "ResponseCode": "0"})),
}


LATE = [(PAID, name) for name in LATE_ANSWERS] + [(FAILED, "read-timeout"), (FAILED, "accepted")]


@pytest.mark.parametrize(("code", "then"), LATE, ids=[f"{SAYS[c]}-{t}" for c, t in LATE])
def test_a_send_answered_after_the_result_leaves_the_payout_as_the_result_said(daraja, patient, maker, checker,
                                                                                code, then):  # fmt: skip
    answers = result_then(daraja, code=code, then=LATE_ANSWERS[then])
    payout = payout_approve(payout_id=payout_request(patient=patient, amount=Decimal("1000"),
                                                     requested_by=maker).pk, approved_by=checker)  # fmt: skip
    assert answers == [(200, ACK)]
    paid = code == PAID
    assert (payout.status, payout.result_code, payout.needs_review) == (S.PAID if paid else S.FAILED, str(code), False)
    assert payout_available(patient=patient) == Decimal("49000" if paid else "50000")
    assert patient_status(patient) == (Patient.Status.IN_TREATMENT if paid else Patient.Status.FULLY_FUNDED)
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.PROCESSED
    assert len(b2c_calls(daraja)) == 1
    if paid:  # the result's receipt and id, not overwritten by the late answer
        assert (payout.receipt, payout.provider_reference) == ("SG632NMUAB", CONVERSATION_ID)


# --- maker-checker: request, approve, send once ------------------------------------------------------------


def test_approval_by_a_second_user_sends_once(daraja, payout_in, checker):
    payout = payout_in(S.SENT, "20000")
    assert payout.approved_by == checker and payout.provider_reference == CONVERSATION_ID
    [call] = b2c_calls(daraja)
    sent = json.loads(call.request.body)
    assert sent["OriginatorConversationID"] == payout.reference
    assert sent["InitiatorName"] == "testapi" and sent["SecurityCredential"] == "encrypted-credential"
    assert sent["CommandID"] == "BusinessPayment" and sent["Amount"] == 20000
    assert sent["PartyA"] == "600992" and sent["PartyB"] == "254708374149"
    assert sent["ResultURL"] == f"{SITE_URL}{RESULT}"
    assert sent["QueueTimeOutURL"] == f"{SITE_URL}{TIMEOUT}"
    assert "Occassion" in sent
    with pytest.raises(PayoutRefused, match="not awaiting approval"):
        payout_approve(payout_id=payout.pk, approved_by=checker)
    assert len(b2c_calls(daraja)) == 1


def test_over_limit_payout_refused(patient, maker):
    payout_request(patient=patient, amount=Decimal("30000"), requested_by=maker)
    with pytest.raises(PayoutRefused, match="not yet paid out"):
        payout_request(patient=patient, amount=Decimal("20001"), requested_by=maker)
    payout_request(patient=patient, amount=Decimal("20000"), requested_by=maker)
    assert payout_available(patient=patient) == 0


@pytest.mark.parametrize("amount", ["0", "-5", "10.50"])
def test_amount_must_be_whole_and_positive(patient, maker, amount):
    with pytest.raises(PayoutRefused):
        payout_request(patient=patient, amount=Decimal(amount), requested_by=maker)


WHO = {
    "outsider": lambda: get_user_model().objects.create_user("outsider", password="x"),
    "plain-staff": lambda: staff_user("plain-staff", "payments.view_payout"),
    "both-roles": lambda: staff_user("both-roles", *MAKER_PERMISSIONS, *CHECKER_PERMISSIONS),  # its own request
}
REFUSALS = [
    ("outsider", "request", "staff"),
    ("outsider", "approve", "staff"),
    ("plain-staff", "request", "add_payout"),
    ("plain-staff", "approve", "approve_payout"),
    ("plain-staff", "resolve", "resolve_payout"),
    ("both-roles", "approve", "someone other than its requester"),
]


@pytest.mark.parametrize(("who", "action", "message"), REFUSALS, ids=[f"{w}-{a}" for w, a, _ in REFUSALS])
def test_who_may_request_approve_and_resolve_is_checked_by_the_service(daraja, patient, maker, who, action, message):
    """Admin powers are permissions, checked by the service itself (not only by the admin's buttons)."""
    user = WHO[who]()
    payout = payout_request(patient=patient, amount=Decimal("10"), requested_by=user if who == "both-roles" else maker)
    with pytest.raises(PayoutRefused, match=message):
        if action == "request":
            payout_request(patient=patient, amount=Decimal("10"), requested_by=user)
        elif action == "approve":
            payout_approve(payout_id=payout.pk, approved_by=user)
        else:
            payout_resolve(payout_id=payout.pk, paid=False, resolved_by=user)
    assert list(Payout.objects.values_list("status", flat=True)) == [S.REQUESTED] and b2c_calls(daraja) == []


@pytest.mark.parametrize(
    ("partner", "message"),
    [({"payout_provider": "mpesa", "payout_msisdn": ""}, "M-Pesa payout number"), (None, "no payout provider")],
    ids=["no-number", "no-provider"],
)
def test_a_partner_we_cannot_pay_is_refused(maker, partner, message):
    partner = TreatmentPartnerFactory(**partner) if partner else None
    patient = PatientFactory(currency="KES", funding_received=Decimal("1000"),
                             **({"treatment_partner": partner} if partner else {}))  # fmt: skip
    with pytest.raises(PayoutRefused, match=message):
        payout_request(patient=patient, amount=Decimal("10"), requested_by=maker)


@pytest.mark.parametrize(
    ("answer", "status", "available"),
    [
        ({"body": requests.ReadTimeout("slow")}, S.AMBIGUOUS, "49000"),  # it may have left: never re-sent
        ({"body": requests.ConnectTimeout("no route")}, S.FAILED, "50000"),  # nothing left us: nothing moved
        ({"status": 400, "json": {"requestId": "x", "errorCode": "400.002.02",
                                  "errorMessage": "Bad Request - Invalid PartyB"}}, S.FAILED, "50000"),
    ],
    ids=["timed-out-after-sending", "never-connected", "refused"],
)  # fmt: skip
def test_how_a_send_fails_decides_the_payout_and_its_funds(daraja, patient, maker, checker, answer, status, available):
    b2c_answers(daraja, **answer)
    payout = payout_request(patient=patient, amount=Decimal("1000"), requested_by=maker)
    payout = payout_approve(payout_id=payout.pk, approved_by=checker)
    assert payout.status == status and payout.needs_review is (status == S.AMBIGUOUS)
    assert len(b2c_calls(daraja)) == 1
    assert payout_available(patient=patient) == Decimal(available)
    if "json" in answer:
        assert "Invalid PartyB" in payout.result_desc


def test_cancel_a_request_frees_the_funds(patient, maker, checker):
    payout = payout_request(patient=patient, amount=Decimal("50000"), requested_by=maker)
    assert payout_available(patient=patient) == 0
    payout_cancel(payout_id=payout.pk, cancelled_by=checker)
    assert payout_available(patient=patient) == Decimal("50000")
    with pytest.raises(PayoutRefused):
        payout_approve(payout_id=payout.pk, approved_by=checker)


@pytest.mark.mysql
@pytest.mark.django_db(transaction=True)
def test_five_checkers_approving_at_once_send_one_payout(daraja, patient, maker):
    checkers = [staff_user(f"checker{i}", *CHECKER_PERMISSIONS) for i in range(5)]
    payout = payout_request(patient=patient, amount=Decimal("5000"), requested_by=maker)

    def approve(user):
        def run():
            try:
                return payout_approve(payout_id=payout.pk, approved_by=user).status
            except PayoutRefused:
                return "refused"

        return run

    b2c_answers(daraja)
    assert sorted(run_together([approve(user) for user in checkers])) == ["refused"] * 4 + ["sent"]
    assert len(b2c_calls(daraja)) == 1
    assert Payout.objects.get().status == S.SENT
