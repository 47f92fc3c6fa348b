"""Payouts (M-Pesa B2C) of their own: a result applies only to the one payout it names exactly (an empty id never
matches: a filter on it would match every payout without one), a different result after paid is held, a send
answered after its result leaves it as the result said. Shared rules are test_money_out.py's, every payout rail's
result callback test_pipeline_money_out.py's, the admin's payout actions payments/tests/test_admin.py's."""

import json
from decimal import Decimal

import pytest
import requests
import responses

from payments.models import CallbackEvent, Payout
from payments.services.payouts import PayoutRefused, payout_approve, payout_available, payout_request
from payments.tests.drivers import MpesaB2C, PayoutKind, b2c_result, request_accepted
from payments.tests.helpers import post
from payments.tests.mpesa_fakes import ACK, B2C_URL, SITE_URL

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("mpesa_settings")]

RESULT, TIMEOUT = MpesaB2C.result_path, MpesaB2C.timeout_path
CONVERSATION_ID = MpesaB2C.conversation_id
S = Payout.Status


@pytest.fixture
def kind(daraja, maker, checker):
    """Payouts of KES 1 000 from a patient's 50 000, its partner paid through M-Pesa (drivers.py: PayoutKind)."""
    return PayoutKind(daraja, maker, checker)


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
def test_a_result_with_no_usable_id_matches_no_payout_even_while_payouts_without_one_exist(kind, path, ids):
    """Not even a payout whose conversation id is '' rather than NULL (an old row, a hand edit)."""
    without_id = [kind.brought_to(status) for status in (S.REQUESTED, S.SENDING, S.AMBIGUOUS)]
    kind.answers(json={k: v for k, v in request_accepted().items() if k != "ConversationID"})
    without_id.append(kind.approve(kind.request()))
    assert without_id[-1].status == S.SENT
    Payout.objects.filter(pk=kind.brought_to(S.SENT).pk).update(provider_reference="")
    assert sorted(Payout.objects.values_list("provider_reference", flat=True), key=str) == ["", *[None] * 4]
    before = list(Payout.objects.order_by("pk").values())

    # Authentic (our secret URL) but naming nothing we know: kept unsettled for a later match, nothing applied.
    assert post(path, b2c_result(without_id[0], **ids)) == (200, ACK)
    assert list(Payout.objects.order_by("pk").values()) == before
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.FAILED and event.error == "names no payout we know yet"


@pytest.mark.parametrize(
    ("statuses", "ids", "learnt"),
    [
        ((S.SENT, S.REQUESTED), {"originator": "not-ours"}, CONVERSATION_ID),
        ((S.AMBIGUOUS, S.AMBIGUOUS), {"conversation_id": "AG_20240706_second"}, "AG_20240706_second"),
    ],
    ids=["by-mpesas-id-when-ours-is-not-echoed", "by-our-id-among-two-awaiting"],
)
def test_a_result_settles_only_the_payout_it_names(kind, statuses, ids, learnt):
    """M-Pesa's ConversationID is the fallback when our OriginatorConversationID is not echoed."""
    payout, other = (kind.brought_to(status) for status in statuses)
    unchanged = Payout.objects.values().get(pk=other.pk)
    assert post(RESULT, b2c_result(payout, **ids)) == (200, ACK)
    payout.refresh_from_db()
    assert (payout.status, payout.receipt, payout.provider_reference) == (S.PAID, "SG632NMUAB", learnt)
    assert Payout.objects.values().get(pk=other.pk) == unchanged


def test_a_result_without_the_secret_naming_no_payout_is_a_404():
    """One naming a payout is held (test_money_out.py: test_a_result_without_the_secret_is_held_and_…)."""
    unknown = {"Result": {"ResultCode": 0, "OriginatorConversationID": "nope", "ConversationID": "AG_y"}}
    assert post("/webhooks/mpesa/b2c/result/", unknown)[0] == 404


# --- a result after the payout is paid ---------------------------------------------------------------------

CHANGES = {
    "failure": {"ResultCode": 2001, "ResultDesc": "The initiator information is invalid."},
    "another-receipt": {"TransactionID": "SG999OTHER"},
    # The first delivery paid the payout but its worker died before settling the inbox row: the provider's resend
    # (a copy of an unsettled delivery, so handled again) finds the payout paid by that same result.
    "the-same-after-its-first-handling-died": None,
}


@pytest.mark.parametrize("case", CHANGES)
def test_a_result_after_paid_leaves_it_paid_held_when_different_ignored_when_the_same(kind, case):
    payout = kind.brought_to(S.SENT)
    body = b2c_result(payout)
    assert post(RESULT, body) == (200, ACK)
    if CHANGES[case] is None:
        CallbackEvent.objects.update(status=CallbackEvent.Status.RECEIVED)  # as if the mark never committed
    else:
        body["Result"].update(CHANGES[case])
    assert post(RESULT, body) == (200, ACK)
    held = CHANGES[case] is not None
    assert CallbackEvent.objects.order_by("pk").last().status == ("review" if held else "ignored")
    payout.refresh_from_db()
    assert (payout.status, payout.receipt, payout.result_code) == (S.PAID, "SG632NMUAB", "0")
    assert not payout.needs_review


# --- the send's answer comes after the result ----------------------------------------------------------------


LATE_ANSWERS = {  # an exception to raise, or a (status, headers, body) answer
    "read-timeout": requests.ReadTimeout("slow"),
    "connection-reset": requests.ConnectionError("connection reset by peer"),
    "connect-timeout": requests.ConnectTimeout("no route"),
    "http-500": (500, {}, json.dumps({"errorCode": "500.003.02", "errorMessage": "System is busy"})),
    "accepted": (200, {}, json.dumps({"ConversationID": "AG_late", "ResponseCode": "0"})),
}
LATE = [("paid", name) for name in LATE_ANSWERS] + [("failed", "read-timeout"), ("failed", "accepted")]


@pytest.mark.parametrize(("says", "then"), LATE)
def test_a_send_answered_after_the_result_leaves_the_payout_as_the_result_said(kind, says, then):
    """Daraja's answer to the B2C request comes after its result callback has arrived through the webhook."""
    answers = []

    def result_then(request):
        payout = Payout.objects.get(reference=json.loads(request.body)["OriginatorConversationID"])
        answers.append(post(RESULT, kind.result(payout, says, "Result before the answer")))
        if isinstance(LATE_ANSWERS[then], BaseException):
            raise LATE_ANSWERS[then]
        return LATE_ANSWERS[then]

    kind.daraja.add_callback(responses.POST, B2C_URL, callback=result_then)
    payout = kind.approve(kind.request())
    assert answers == [(200, ACK)]
    paid = says == "paid"
    assert (payout.status, payout.needs_review) == (S.PAID if paid else S.FAILED, False)
    assert (payout.result_code, payout.result_desc) == kind.recorded(says, "Result before the answer")
    assert kind.available() == kind.received - (kind.amount if paid else 0) and kind.moved(payout) is paid
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.PROCESSED and kind.sends() == 1
    if paid:  # the result's receipt and id, not overwritten by the late answer
        assert (payout.receipt, payout.provider_reference) == ("SG632NMUAB", CONVERSATION_ID)


# --- maker-checker: request, approve, send once ------------------------------------------------------------


def test_approval_by_a_second_user_sends_once(kind, checker):
    payout = kind.brought_to(S.SENT)
    assert payout.approved_by == checker and payout.provider_reference == CONVERSATION_ID
    [call] = kind.daraja.calls[1:]  # after the token
    sent = json.loads(call.request.body)
    assert sent["OriginatorConversationID"] == payout.reference
    assert sent["InitiatorName"] == "testapi" and sent["SecurityCredential"] == "encrypted-credential"
    assert sent["CommandID"] == "BusinessPayment" and sent["Amount"] == 1000
    assert sent["PartyA"] == "600992" and sent["PartyB"] == "254708374149"
    assert sent["ResultURL"] == f"{SITE_URL}{RESULT}"
    assert sent["QueueTimeOutURL"] == f"{SITE_URL}{TIMEOUT}"
    assert "Occassion" in sent
    with pytest.raises(PayoutRefused, match="not awaiting approval"):
        payout_approve(payout_id=payout.pk, approved_by=checker)
    assert kind.sends() == 1


@pytest.mark.parametrize(
    ("amount", "message"),
    [("20001", "not yet paid out"), *[(a, "whole, positive") for a in ("0", "-5", "10.50")]],
    ids=["over-what-is-left", "zero", "negative", "not-whole"],
)
def test_a_payout_over_what_is_left_or_not_whole_and_positive_is_refused(kind, maker, amount, message):
    payout_request(patient=kind.patient, amount=Decimal("30000"), requested_by=maker)  # of 50 000
    with pytest.raises(PayoutRefused, match=message):
        payout_request(patient=kind.patient, amount=Decimal(amount), requested_by=maker)
    payout_request(patient=kind.patient, amount=Decimal("20000"), requested_by=maker)
    assert payout_available(patient=kind.patient) == 0
