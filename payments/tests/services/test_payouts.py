"""Payouts (M-Pesa B2C) to treatment partners under maker-checker: requested by one staff user, approved and
sent once by another; results applied only to the one payout they name exactly, and only to a payout we sent.

A result settles a payout in `sending`, `sent` or `ambiguous`; for any other payout it is held for review. An
empty id never matches (a filter on it would match every payout without one). A send that times out after
the result already settled the payout leaves it settled. Daraja is mocked with `responses`.
"""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
import responses
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from config.tests.helpers import login_with_second_factor
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
from payments.tests.factories import CHECKER_PERMISSIONS, MAKER_PERMISSIONS, staff_user
from payments.tests.helpers import post
from payments.tests.mpesa_fakes import ACK, B2C_TOKEN, B2C_URL, SITE_URL

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("mpesa_settings", "daraja")]

RESULT = f"/webhooks/mpesa/b2c/result/{B2C_TOKEN}/"
TIMEOUT = f"/webhooks/mpesa/b2c/timeout/{B2C_TOKEN}/"
CONVERSATION_ID = "AG_20240706_20106e9209f64bebd05b"


@pytest.fixture
def patient():
    """Fully funded, with a treatment partner paid through M-Pesa."""
    partner = TreatmentPartnerFactory(payout_provider="mpesa", payout_msisdn="254708374149", country="KE")
    return PatientFactory(
        code="PAT-KE-20",
        currency="KES",
        funding_goal=Decimal("50000"),
        funding_received=Decimal("50000"),
        status=Patient.Status.FULLY_FUNDED,
        treatment_partner=partner,
    )


def b2c_answers(daraja, **kwargs) -> None:
    """What Daraja answers the next B2C request with (replacing any earlier answer)."""
    daraja.remove(responses.POST, B2C_URL)
    daraja.add(responses.POST, B2C_URL, **kwargs)


def accepted(conversation_id: str | None = CONVERSATION_ID) -> dict:
    body = {
        "OriginatorConversationID": "ignored",
        "ResponseCode": "0",
        "ResponseDescription": "Accept the service request successfully.",
    }
    if conversation_id is not None:
        body["ConversationID"] = conversation_id
    return {"json": body}


def b2c_calls(daraja) -> list:
    return [c for c in daraja.calls if c.request.url == B2C_URL]


def result_body(
    payout: Payout,
    code=0,
    desc="The service request is processed successfully.",
    *,
    originator: str | None = None,
    conversation_id: str | None = CONVERSATION_ID,
) -> dict:
    result = {
        "ResultType": 0,
        "ResultCode": code,
        "ResultDesc": desc,
        "OriginatorConversationID": payout.reference if originator is None else originator,
        "ConversationID": conversation_id,
        "TransactionID": "SG632NMUAB",
        "ReferenceData": {"ReferenceItem": {"Key": "QueueTimeoutURL"}},
    }
    if code == 0:
        result["ResultParameters"] = {
            "ResultParameter": [
                {"Key": "TransactionAmount", "Value": int(payout.amount)},
                {"Key": "TransactionReceipt", "Value": "SG632NMUAB"},
            ]
        }
    return {"Result": result}


def snapshot() -> list[dict]:
    return list(Payout.objects.order_by("pk").values())


def requested(patient, maker, amount="1000") -> Payout:
    return payout_request(patient=patient, amount=Decimal(amount), requested_by=maker)


def payout_in(status: str, *, daraja, patient, maker, checker, amount="1000") -> Payout:
    """A payout brought to `status` the way it happens (sending: the sending process died)."""
    payout = requested(patient, maker, amount)
    if status == Payout.Status.REQUESTED:
        return payout
    if status == Payout.Status.CANCELLED:
        return payout_cancel(payout_id=payout.pk, cancelled_by=checker)
    if status == Payout.Status.SENDING:
        Payout.objects.filter(pk=payout.pk).update(
            status=Payout.Status.SENDING, approved_by=checker, approved_at=timezone.now()
        )
        payout.refresh_from_db()
        return payout
    answers = {
        Payout.Status.SENT: accepted(),
        Payout.Status.AMBIGUOUS: {"body": requests.ReadTimeout("slow")},
        Payout.Status.FAILED: {"body": requests.ConnectTimeout("no route")},
    }
    b2c_answers(daraja, **answers[status])
    payout = payout_approve(payout_id=payout.pk, approved_by=checker)
    assert payout.status == status
    return payout


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
    daraja, patient, maker, checker, path, ids
):
    context = {"daraja": daraja, "patient": patient, "maker": maker, "checker": checker, "amount": "100"}
    without_id = [
        payout_in(Payout.Status.REQUESTED, **context),
        payout_in(Payout.Status.SENDING, **context),
        payout_in(Payout.Status.AMBIGUOUS, **context),
    ]
    b2c_answers(daraja, **accepted(conversation_id=None))
    without_id.append(payout_approve(payout_id=requested(patient, maker, "100").pk, approved_by=checker))
    assert without_id[-1].status == Payout.Status.SENT
    assert all(p.provider_reference is None for p in Payout.objects.all())
    before = snapshot()

    # Authentic (our secret URL) but naming nothing we know: kept unsettled for a later match, nothing applied.
    assert post(path, result_body(without_id[0], **ids)) == (200, ACK)
    assert snapshot() == before
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.FAILED and event.error == "names no payout we know yet"


def test_an_empty_conversation_id_does_not_match_a_payout_stored_with_an_empty_one(daraja, patient, maker, checker):
    """Even a payout whose conversation id is '' rather than NULL (an old row, a hand edit) is not matched."""
    payout = payout_in(Payout.Status.SENT, daraja=daraja, patient=patient, maker=maker, checker=checker)
    Payout.objects.filter(pk=payout.pk).update(provider_reference="")
    before = snapshot()
    assert post(RESULT, result_body(payout, originator="RHCI-PO-unknown0000000", conversation_id="")) == (200, ACK)
    assert snapshot() == before
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.FAILED


def test_a_result_naming_an_unknown_originator_and_a_known_conversation_id_settles_that_payout(
    daraja, patient, maker, checker
):
    """The contrast: M-Pesa's ConversationID is the fallback when our OriginatorConversationID is not echoed."""
    payout = payout_in(Payout.Status.SENT, daraja=daraja, patient=patient, maker=maker, checker=checker)
    other = payout_in(Payout.Status.REQUESTED, daraja=daraja, patient=patient, maker=maker, checker=checker)
    assert post(RESULT, result_body(payout, originator="not-ours")) == (200, ACK)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.PAID and payout.receipt == "SG632NMUAB"
    other.refresh_from_db()
    assert other.status == Payout.Status.REQUESTED


def test_a_result_settles_only_the_payout_it_names(daraja, patient, maker, checker):
    context = {"daraja": daraja, "patient": patient, "maker": maker, "checker": checker, "amount": "100"}
    first = payout_in(Payout.Status.AMBIGUOUS, **context)
    second = payout_in(Payout.Status.AMBIGUOUS, **context)
    assert post(RESULT, result_body(second, conversation_id="AG_20240706_second")) == (200, ACK)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == Payout.Status.AMBIGUOUS and first.provider_reference is None
    assert second.status == Payout.Status.PAID and second.provider_reference == "AG_20240706_second"


# --- a result for a payout we did not send is held ----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "flagged"),
    [
        (Payout.Status.REQUESTED, 0, True),
        (Payout.Status.REQUESTED, 2001, False),
        (Payout.Status.CANCELLED, 0, True),
        (Payout.Status.CANCELLED, 2001, False),
        (Payout.Status.FAILED, 0, True),
        (Payout.Status.FAILED, 2001, False),
    ],
)
def test_a_result_for_a_payout_not_awaiting_one_is_held_for_review_and_not_applied(
    daraja, patient, maker, checker, status, code, flagged
):
    payout = payout_in(status, daraja=daraja, patient=patient, maker=maker, checker=checker)
    before = Payout.objects.values("status", "receipt", "result_code", "completed_at", "provider_reference").get(
        pk=payout.pk
    )
    available = payout_available(patient=patient)
    assert post(RESULT, result_body(payout, code=code, desc="Some result")) == (200, ACK)
    payout.refresh_from_db()
    after = Payout.objects.values("status", "receipt", "result_code", "completed_at", "provider_reference").get(
        pk=payout.pk
    )
    assert after == before
    assert payout.needs_review is flagged  # money moved for a payout we never sent, or called failed
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REVIEW
    assert event.error == f"result for payout {payout.reference} in {status}"
    patient.refresh_from_db()
    assert patient.status == Patient.Status.FULLY_FUNDED
    assert payout_available(patient=patient) == available
    assert len(b2c_calls(daraja)) == (1 if status == Payout.Status.FAILED else 0)


@pytest.mark.parametrize("status", [Payout.Status.REQUESTED, Payout.Status.CANCELLED])
def test_a_queue_timeout_for_a_payout_never_sent_is_held_and_not_flagged(daraja, patient, maker, checker, status):
    payout = payout_in(status, daraja=daraja, patient=patient, maker=maker, checker=checker)
    assert post(TIMEOUT, result_body(payout, code=1, desc="The service request has timed out.")) == (200, ACK)
    payout.refresh_from_db()
    assert payout.status == status and not payout.needs_review
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REVIEW


def test_a_failure_after_paid_is_held_and_the_payout_stays_paid(daraja, patient, maker, checker):
    payout = payout_in(Payout.Status.SENT, daraja=daraja, patient=patient, maker=maker, checker=checker)
    assert post(RESULT, result_body(payout)) == (200, ACK)
    assert post(RESULT, result_body(payout, code=2001, desc="The initiator information is invalid.")) == (200, ACK)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.PAID and payout.receipt == "SG632NMUAB" and payout.result_code == "0"
    assert CallbackEvent.objects.order_by("pk").last().status == CallbackEvent.Status.REVIEW


# --- a result settles a payout we sent ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [Payout.Status.SENDING, Payout.Status.SENT, Payout.Status.AMBIGUOUS])
def test_a_successful_result_pays_a_payout_awaiting_it(daraja, patient, maker, checker, status):
    payout = payout_in(status, daraja=daraja, patient=patient, maker=maker, checker=checker)
    assert post(RESULT, result_body(payout)) == (200, ACK)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.PAID
    assert payout.receipt == "SG632NMUAB" and payout.result_code == "0" and payout.completed_at is not None
    assert payout.provider_reference == CONVERSATION_ID
    patient.refresh_from_db()
    assert patient.status == Patient.Status.IN_TREATMENT
    assert payout_available(patient=patient) == Decimal("49000")
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.PROCESSED
    assert len(b2c_calls(daraja)) == (0 if status == Payout.Status.SENDING else 1)  # never re-sent


@pytest.mark.parametrize("status", [Payout.Status.SENDING, Payout.Status.SENT, Payout.Status.AMBIGUOUS])
def test_a_failed_result_fails_a_payout_awaiting_it_and_frees_the_funds(daraja, patient, maker, checker, status):
    payout = payout_in(status, daraja=daraja, patient=patient, maker=maker, checker=checker)
    body = result_body(payout, code=2001, desc="The initiator information is invalid.")
    assert post(RESULT, body) == (200, ACK)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.FAILED
    assert payout.result_code == "2001" and payout.result_desc == "The initiator information is invalid."
    patient.refresh_from_db()
    assert patient.status == Patient.Status.FULLY_FUNDED
    assert payout_available(patient=patient) == Decimal("50000")
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.PROCESSED


def test_a_successful_result_for_another_amount_is_held_for_review_and_not_applied(daraja, patient, maker, checker):
    payout = payout_in(Payout.Status.SENT, daraja=daraja, patient=patient, maker=maker, checker=checker)
    body = result_body(payout)
    body["Result"]["ResultParameters"]["ResultParameter"][0]["Value"] = 999
    assert post(RESULT, body) == (200, ACK)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.SENT and payout.needs_review and "999" in payout.result_desc
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REVIEW


# --- resolving a payout stuck in `sending` by hand --------------------------------------------------------


def stuck_for(payout: Payout, minutes: int) -> None:
    Payout.objects.filter(pk=payout.pk).update(approved_at=timezone.now() - timedelta(minutes=minutes))


@pytest.mark.parametrize("minutes", [0, 9])
def test_a_payout_sending_for_less_than_ten_minutes_cannot_be_resolved(daraja, patient, maker, checker, minutes):
    payout = payout_in(Payout.Status.SENDING, daraja=daraja, patient=patient, maker=maker, checker=checker)
    stuck_for(payout, minutes)
    with pytest.raises(PayoutRefused, match="still sending"):
        payout_resolve(payout_id=payout.pk, paid=False, resolved_by=checker)
    with pytest.raises(PayoutRefused, match="still sending"):
        payout_resolve(payout_id=payout.pk, paid=True, resolved_by=checker, receipt="SG632NMUAB")
    payout.refresh_from_db()
    assert payout.status == Payout.Status.SENDING


def test_a_payout_stuck_in_sending_for_over_ten_minutes_can_be_resolved_as_paid(daraja, patient, maker, checker):
    payout = payout_in(Payout.Status.SENDING, daraja=daraja, patient=patient, maker=maker, checker=checker)
    stuck_for(payout, 11)
    payout = payout_resolve(payout_id=payout.pk, paid=True, resolved_by=checker, receipt=" SG632NMUAB ")
    assert payout.status == Payout.Status.PAID and payout.receipt == "SG632NMUAB" and not payout.needs_review
    patient.refresh_from_db()
    assert patient.status == Patient.Status.IN_TREATMENT
    assert b2c_calls(daraja) == []  # resolving never sends


def test_a_payout_stuck_in_sending_for_over_ten_minutes_can_be_resolved_as_failed(daraja, patient, maker, checker):
    payout = payout_in(Payout.Status.SENDING, daraja=daraja, patient=patient, maker=maker, checker=checker)
    stuck_for(payout, 11)
    payout = payout_resolve(payout_id=payout.pk, paid=False, resolved_by=checker)
    assert payout.status == Payout.Status.FAILED
    assert payout_available(patient=patient) == Decimal("50000")
    assert b2c_calls(daraja) == []


@pytest.mark.parametrize(
    "permissions",
    [MAKER_PERMISSIONS, ("payments.approve_payout", "payments.view_payout"), ("payments.change_payout",)],
    ids=["maker", "approver-only", "change-only"],
)
def test_resolving_a_stuck_payout_needs_the_resolve_permission(daraja, patient, maker, checker, permissions):
    payout = payout_in(Payout.Status.SENDING, daraja=daraja, patient=patient, maker=maker, checker=checker)
    stuck_for(payout, 60)
    someone = staff_user("someone", *permissions)
    with pytest.raises(PayoutRefused, match="resolve_payout"):
        payout_resolve(payout_id=payout.pk, paid=False, resolved_by=someone)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.SENDING


# --- the send's answer comes after the result ----------------------------------------------------------------


def result_then(daraja, *, code: int, then):
    """Daraja's answer to the B2C request: first the result callback arrives (through the webhook), then
    `then` (an exception to raise, or a (status, headers, body) answer)."""
    answers: list = []

    def callback(request):
        sent = json.loads(request.body)
        payout = Payout.objects.get(reference=sent["OriginatorConversationID"])
        answers.append(post(RESULT, result_body(payout, code=code, desc="Result before the answer")))
        if isinstance(then, BaseException):
            raise then
        return then

    daraja.remove(responses.POST, B2C_URL)
    daraja.add_callback(responses.POST, B2C_URL, callback=callback)
    return answers


@pytest.mark.parametrize(
    "then",
    [
        requests.ReadTimeout("slow"),
        requests.ConnectionError("connection reset by peer"),
        requests.ConnectTimeout("no route"),
        (500, {}, json.dumps({"errorCode": "500.003.02", "errorMessage": "System is busy"})),
        (200, {}, json.dumps({"ConversationID": "AG_late", "ResponseCode": "0"})),
    ],
    ids=["read-timeout", "connection-reset", "connect-timeout", "http-500", "accepted"],
)
def test_a_send_answered_after_the_result_said_paid_leaves_the_payout_paid(daraja, patient, maker, checker, then):
    answers = result_then(daraja, code=0, then=then)
    payout = payout_approve(payout_id=requested(patient, maker).pk, approved_by=checker)
    assert answers == [(200, ACK)]
    assert payout.status == Payout.Status.PAID
    assert payout.receipt == "SG632NMUAB" and not payout.needs_review
    assert payout.provider_reference == CONVERSATION_ID  # the result's, not overwritten by the late answer
    patient.refresh_from_db()
    assert patient.status == Patient.Status.IN_TREATMENT
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.PROCESSED
    assert len(b2c_calls(daraja)) == 1


@pytest.mark.parametrize("then", [requests.ReadTimeout("slow"), (200, {}, json.dumps({"ResponseCode": "0"}))])
def test_a_send_answered_after_the_result_said_failed_leaves_the_payout_failed(daraja, patient, maker, checker, then):
    result_then(daraja, code=2001, then=then)
    payout = payout_approve(payout_id=requested(patient, maker).pk, approved_by=checker)
    assert payout.status == Payout.Status.FAILED and payout.result_code == "2001"
    assert not payout.needs_review
    assert payout_available(patient=patient) == Decimal("50000")


def test_the_same_result_again_after_its_first_handling_died_is_ignored_not_sent_to_review(
    daraja, patient, maker, checker
):
    """The first delivery paid the payout but its worker died before settling the inbox row: the provider's
    resend (a copy of an unsettled delivery, so handled again) finds the payout paid by that same result."""

    payout = payout_in(Payout.Status.SENT, daraja=daraja, patient=patient, maker=maker, checker=checker)
    body = json.dumps(result_body(payout)).encode()
    assert post(RESULT, body) == (200, ACK)
    CallbackEvent.objects.update(status=CallbackEvent.Status.RECEIVED)  # as if the mark never committed

    assert post(RESULT, body) == (200, ACK)

    resend = CallbackEvent.objects.order_by("pk").last()
    assert resend.status == CallbackEvent.Status.IGNORED
    payout.refresh_from_db()
    assert payout.status == Payout.Status.PAID and not payout.needs_review


def test_a_different_result_for_a_paid_payout_is_still_held_for_review(daraja, patient, maker, checker):
    payout = payout_in(Payout.Status.SENT, daraja=daraja, patient=patient, maker=maker, checker=checker)
    post(RESULT, result_body(payout))
    other = result_body(payout)
    other["Result"]["TransactionID"] = "SG999OTHER"
    assert post(RESULT, other) == (200, ACK)
    assert CallbackEvent.objects.order_by("pk").last().status == CallbackEvent.Status.REVIEW


# --- maker-checker: request, approve, send once ------------------------------------------------------------


def mock_b2c(daraja, status=200, body=None):
    daraja.post(
        B2C_URL,
        status=status,
        json=body
        or {
            "ConversationID": "AG_20240706_20106e9209f64bebd05b",
            "OriginatorConversationID": "ignored",
            "ResponseCode": "0",
            "ResponseDescription": "Accept the service request successfully.",
        },
    )


def test_approval_by_the_requester_is_refused_even_with_both_permissions(daraja, patient):
    mock_b2c(daraja)
    both = staff_user("both-roles", *MAKER_PERMISSIONS, *CHECKER_PERMISSIONS)
    payout = payout_request(patient=patient, amount=Decimal("20000"), requested_by=both)
    with pytest.raises(PayoutRefused, match="someone other than its requester"):
        payout_approve(payout_id=payout.pk, approved_by=both)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.REQUESTED
    assert b2c_calls(daraja) == []


def test_approval_by_a_second_user_sends_once(daraja, patient, maker, checker):
    mock_b2c(daraja)
    payout = payout_request(patient=patient, amount=Decimal("20000"), requested_by=maker)
    payout = payout_approve(payout_id=payout.pk, approved_by=checker)
    assert payout.status == Payout.Status.SENT
    assert payout.approved_by == checker
    assert payout.provider_reference == "AG_20240706_20106e9209f64bebd05b"
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


def test_timeout_then_result_resolves_it(daraja, patient, maker, checker):
    mock_b2c(daraja)
    payout = payout_approve(
        payout_id=payout_request(patient=patient, amount=Decimal("20000"), requested_by=maker).pk, approved_by=checker
    )
    timeout = result_body(payout, code=1, desc="The service request has timed out.")
    assert post(TIMEOUT, timeout) == (200, ACK)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.AMBIGUOUS and payout.needs_review
    assert len(b2c_calls(daraja)) == 1  # never re-sent
    assert post(RESULT, result_body(payout)) == (200, ACK)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.PAID and payout.receipt == "SG632NMUAB"
    patient.refresh_from_db()
    assert patient.status == Patient.Status.IN_TREATMENT
    assert post(RESULT, result_body(payout)) == (200, ACK)  # duplicate
    assert Payout.objects.get().status == Payout.Status.PAID


def test_failed_result(daraja, patient, maker, checker):
    mock_b2c(daraja)
    payout = payout_approve(
        payout_id=payout_request(patient=patient, amount=Decimal("1000"), requested_by=maker).pk, approved_by=checker
    )
    body = result_body(payout, code=2001, desc="The initiator information is invalid.")
    assert post(RESULT, body) == (200, ACK)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.FAILED and payout.result_code == "2001"
    patient.refresh_from_db()
    assert patient.status == Patient.Status.FULLY_FUNDED
    assert payout_available(patient=patient) == Decimal("50000")


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


def test_non_staff_cannot_request_or_approve(patient, maker):
    outsider = get_user_model().objects.create_user("outsider", password="x")
    with pytest.raises(PayoutRefused, match="staff"):
        payout_request(patient=patient, amount=Decimal("10"), requested_by=outsider)
    payout = payout_request(patient=patient, amount=Decimal("10"), requested_by=maker)
    with pytest.raises(PayoutRefused, match="staff"):
        payout_approve(payout_id=payout.pk, approved_by=outsider)


def test_staff_without_the_permission_cannot_approve_send_or_resolve(daraja, patient, maker):
    """Admin powers are permissions, checked by the service itself (not only by the admin's buttons)."""
    from payments.services.payouts import payout_resolve

    mock_b2c(daraja)
    plain_staff = staff_user("plain-staff", "payments.view_payout")
    payout = payout_request(patient=patient, amount=Decimal("10"), requested_by=maker)
    with pytest.raises(PayoutRefused, match="approve_payout"):
        payout_approve(payout_id=payout.pk, approved_by=plain_staff)
    with pytest.raises(PayoutRefused, match="add_payout"):
        payout_request(patient=patient, amount=Decimal("10"), requested_by=plain_staff)
    with pytest.raises(PayoutRefused, match="resolve_payout"):
        payout_resolve(payout_id=payout.pk, paid=False, resolved_by=plain_staff)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.REQUESTED and b2c_calls(daraja) == []


def test_partner_without_mpesa_number_refused(maker):
    partner = TreatmentPartnerFactory(payout_provider="mpesa", payout_msisdn="")
    patient = PatientFactory(currency="KES", funding_received=Decimal("1000"), treatment_partner=partner)
    with pytest.raises(PayoutRefused, match="M-Pesa payout number"):
        payout_request(patient=patient, amount=Decimal("10"), requested_by=maker)


def test_partner_without_a_payout_provider_refused(maker):
    patient = PatientFactory(currency="KES", funding_received=Decimal("1000"))
    with pytest.raises(PayoutRefused, match="no payout provider"):
        payout_request(patient=patient, amount=Decimal("10"), requested_by=maker)


def test_b2c_timing_out_after_sending_is_ambiguous_and_not_resent(daraja, patient, maker, checker):
    daraja.post(B2C_URL, body=requests.ReadTimeout("slow"))
    payout = payout_approve(
        payout_id=payout_request(patient=patient, amount=Decimal("1000"), requested_by=maker).pk, approved_by=checker
    )
    assert payout.status == Payout.Status.AMBIGUOUS and payout.needs_review
    assert len(b2c_calls(daraja)) == 1
    assert payout_available(patient=patient) == Decimal("49000")  # still committed until resolved


def test_b2c_that_never_connected_is_failed_and_frees_the_funds(daraja, patient, maker, checker):
    daraja.post(B2C_URL, body=requests.ConnectTimeout("no route"))
    payout = payout_approve(
        payout_id=payout_request(patient=patient, amount=Decimal("1000"), requested_by=maker).pk, approved_by=checker
    )
    assert payout.status == Payout.Status.FAILED  # nothing left us: nothing can have moved
    assert payout_available(patient=patient) == Decimal("50000")


def test_refused_b2c_is_failed(daraja, patient, maker, checker):
    mock_b2c(
        daraja,
        status=400,
        body={"requestId": "x", "errorCode": "400.002.02", "errorMessage": "Bad Request - Invalid PartyB"},
    )
    payout = payout_approve(
        payout_id=payout_request(patient=patient, amount=Decimal("1000"), requested_by=maker).pk, approved_by=checker
    )
    assert payout.status == Payout.Status.FAILED
    assert "Invalid PartyB" in payout.result_desc


def test_callback_without_token_is_held_for_review_and_wrong_token_rejected(patient, maker):
    payout = payout_request(patient=patient, amount=Decimal("1000"), requested_by=maker)
    assert post("/webhooks/mpesa/b2c/result/", result_body(payout)) == (200, ACK)
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REVIEW
    status, body = post("/webhooks/mpesa/b2c/result/nope/", result_body(payout))
    assert status == 401 and body["code"] == "AUTH_REQUIRED"
    payout.refresh_from_db()
    assert payout.status == Payout.Status.REQUESTED


@pytest.mark.parametrize(
    "body", [b"nope", b"{}", b'{"Result": {"ResultCode": 0}}', b'{"Result": {"ConversationID": "x"}}']
)
def test_malformed_b2c_callback_is_400_and_stored(body):
    status, answer = post(RESULT, body)
    assert status == 400 and answer["code"] == "INVALID_FORMAT"
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REJECTED


def test_an_authentic_result_for_an_unknown_payout_is_kept_unsettled_and_one_without_the_secret_is_404():
    body = {"Result": {"ResultCode": 0, "OriginatorConversationID": "nope", "ConversationID": "AG_x"}}
    assert post(RESULT, body) == (200, ACK)
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.FAILED  # run again once it can be matched
    status, _ = post("/webhooks/mpesa/b2c/result/", {"Result": {**body["Result"], "ConversationID": "AG_y"}})
    assert status == 404


# --- admin (maker-checker in the Django admin) -------------------------------------------------------


@pytest.fixture
def admin_users():
    """Two superusers: all permissions, and still not allowed to approve their own request."""
    users = get_user_model().objects
    return (
        users.create_superuser("maker-admin", password="x", email="m@example.org"),
        users.create_superuser("checker-admin", password="x", email="c@example.org"),
    )


def test_admin_request_then_approval_by_another_staff_user(daraja, patient, admin_users):
    mock_b2c(daraja)
    maker, checker = admin_users
    client = Client()
    login_with_second_factor(client, maker)  # superusers can approve: the admin wants their second factor
    response = client.post("/admin/payments/payout/add/", {"patient": patient.pk, "amount": "20000"})
    assert response.status_code == 302, response.content[:2000]
    payout = Payout.objects.get()
    assert payout.requested_by == maker and payout.status == Payout.Status.REQUESTED
    changelist = "/admin/payments/payout/"
    action = {"action": "approve_and_send", "_selected_action": [payout.pk]}
    response = client.post(changelist, action, follow=True)
    assert "someone other than its requester" in response.content.decode()
    assert Payout.objects.get().status == Payout.Status.REQUESTED
    login_with_second_factor(client, checker)
    client.post(changelist, action, follow=True)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.SENT and payout.approved_by == checker
    assert len(b2c_calls(daraja)) == 1


def test_admin_refuses_an_over_limit_request(patient, admin_users):
    client = Client()
    login_with_second_factor(client, admin_users[0])
    response = client.post("/admin/payments/payout/add/", {"patient": patient.pk, "amount": "50001"})
    assert response.status_code == 200
    assert "not yet paid out" in response.content.decode()
    assert Payout.objects.count() == 0


def test_ambiguous_payout_resolved_by_hand(daraja, patient, maker, checker):
    from payments.services.payouts import payout_resolve

    daraja.post(B2C_URL, body=requests.ReadTimeout("slow"))
    payout = payout_approve(
        payout_id=payout_request(patient=patient, amount=Decimal("1000"), requested_by=maker).pk, approved_by=checker
    )
    assert payout.status == Payout.Status.AMBIGUOUS
    with pytest.raises(PayoutRefused, match="receipt"):
        payout_resolve(payout_id=payout.pk, paid=True, resolved_by=checker)
    payout = payout_resolve(payout_id=payout.pk, paid=True, resolved_by=checker, receipt="SG632NMUAB")
    assert payout.status == Payout.Status.PAID and not payout.needs_review
    patient.refresh_from_db()
    assert patient.status == Patient.Status.IN_TREATMENT
    with pytest.raises(PayoutRefused, match="nothing to resolve"):
        payout_resolve(payout_id=payout.pk, paid=False, resolved_by=checker)
    assert len(b2c_calls(daraja)) == 1


def test_cancel_a_request_frees_the_funds(patient, maker, checker):
    from payments.services.payouts import payout_cancel

    payout = payout_request(patient=patient, amount=Decimal("50000"), requested_by=maker)
    assert payout_available(patient=patient) == 0
    payout_cancel(payout_id=payout.pk, cancelled_by=checker)
    assert payout_available(patient=patient) == Decimal("50000")
    with pytest.raises(PayoutRefused):
        payout_approve(payout_id=payout.pk, approved_by=checker)
