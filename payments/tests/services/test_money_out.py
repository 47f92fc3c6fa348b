"""Money out as exact as money in: the cases where a payout or refund used to be lost, settled on a word the
settings said not to trust, or left waiting in silence. Each ends in the state docs/fault-safety.md promises
("Money out"). The providers' far sides are `responses`; callbacks go through the real webhook URLs."""

import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
import requests
import responses
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from donor.models import Allocation, Donation
from donor.services import donation_complete, donation_create, donor_for_guest
from patients.models import Patient
from patients.tests.factories import PatientFactory, TreatmentPartnerFactory
from payments.models import AuditEntry, CallbackEvent, Payment, Payout, Refund
from payments.services.payouts import payout_approve, payout_request, payouts_reconcile
from payments.services.refunds import refund_approve, refund_request
from payments.services.watchdog import watchdog_alerts
from payments.tests.factories import staff_user
from payments.tests.mpesa_fakes import API, B2C_TOKEN, B2C_URL, TOKEN_URL
from payments.tests.providers.airtel import support as airtel
from payments.tests.providers.mtn import support as mtn

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("mpesa_settings")]

REVERSAL_URL = f"{API}/mpesa/reversal/v1/request"
REVERSAL_RESULT = f"/webhooks/mpesa/reversal/result/{B2C_TOKEN}/"
B2C_RESULT = f"/webhooks/mpesa/b2c/result/{B2C_TOKEN}/"
CONVERSATION_ID = "AG_20261207_00004e2a5b1c7d9f0aaa"
RECEIPT = "TL4RCPT001"
DARAJA_OK = {"ResultCode": 0, "ResultDesc": "Accepted"}


@pytest.fixture
def maker():
    return staff_user("maker", "payments.add_refund", "payments.add_payout")


@pytest.fixture
def checker():
    return staff_user(
        "checker", "payments.approve_refund", "payments.resolve_refund", "payments.approve_payout",
        "payments.resolve_payout",
    )  # fmt: skip


def post(path: str, body: dict) -> tuple[int, dict]:
    response = Client().post(path, data=json.dumps(body), content_type="application/json")
    return response.status_code, response.json()


def paid_donation(*, provider="mpesa", currency="KES", amount="1000", receipt=RECEIPT, reference="") -> Donation:
    patient = PatientFactory(currency=currency, funding_goal=Decimal("1000000"))
    donation = donation_create(patient=patient, amount=Decimal(amount), currency=currency,
                               donor=donor_for_guest(name="Amina"))  # fmt: skip
    Payment.objects.create(
        donation=donation, reference=donation.reference, provider=provider, msisdn="254708374149",
        amount=donation.amount, currency=currency, status=Payment.Status.SUCCEEDED,
        provider_reference=reference or f"ws_CO_{donation.pk}", receipt=receipt,
    )  # fmt: skip
    donation_complete(donation_id=donation.pk)
    return Donation.objects.get(pk=donation.pk)


def reversal_result(code=0, conversation_id=CONVERSATION_ID, *, amount=1000, original=RECEIPT) -> dict:
    result = {
        "ResultType": 0, "ResultCode": code, "ResultDesc": "The service request is processed successfully.",
        "OriginatorConversationID": "dad6-4c34-8787-c8cb963a496d1268232", "ConversationID": conversation_id,
        "TransactionID": "SKE52PAWR9",
    }  # fmt: skip
    if code == 0:
        result["ResultParameters"] = {"ResultParameter": [
            {"Key": "Amount", "Value": amount}, {"Key": "OriginalTransactionID", "Value": original},
        ]}  # fmt: skip
    return {"Result": result}


def reversal_answer(conversation_id=CONVERSATION_ID) -> dict:
    return {"OriginatorConversationID": "f1e2-4b95-a71d", "ConversationID": conversation_id, "ResponseCode": "0",
            "ResponseDescription": "Accept the service request successfully."}  # fmt: skip


def refund_of(donation: Donation, maker, amount=None) -> Refund:
    return refund_request(donation=donation, amount=amount or donation.amount, reason="Donor asked", requested_by=maker)


def reversals(donation: Donation) -> list[Decimal]:
    return list(donation.allocations.filter(entry=Allocation.Entry.REVERSAL).values_list("amount", flat=True))


# --- matched by what we knew before sending ----------------------------------------------------------------


@responses.activate
def test_a_reversal_result_that_overtakes_the_requests_answer_is_kept_and_settles_the_refund(maker, checker):
    """Daraja's result reaches us while we are still reading its answer (the ConversationID not yet stored)."""
    donation = paid_donation()
    responses.get(TOKEN_URL, json={"access_token": "t", "expires_in": "3599"})
    early = {}

    def answer_after_the_result(request):
        early["answer"] = post(REVERSAL_RESULT, reversal_result())
        return 200, {}, json.dumps(reversal_answer())

    responses.add_callback(responses.POST, REVERSAL_URL, callback=answer_after_the_result)
    refund = refund_approve(refund_id=refund_of(donation, maker).pk, approved_by=checker)

    assert early["answer"] == (200, DARAJA_OK)  # stored and acknowledged, not thrown away as "unknown"
    assert refund.status == Refund.Status.REFUNDED and refund.provider_reference == CONVERSATION_ID
    assert reversals(donation) == [Decimal("-1000")]
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.PROCESSED and event.our_reference == refund.reference


@responses.activate
def test_a_reversal_that_timed_out_is_settled_by_its_result_through_the_receipt_it_reverses(maker, checker):
    donation = paid_donation()
    responses.get(TOKEN_URL, json={"access_token": "t", "expires_in": "3599"})
    responses.post(REVERSAL_URL, body=requests.ReadTimeout("slow"))
    refund = refund_approve(refund_id=refund_of(donation, maker).pk, approved_by=checker)
    assert refund.status == Refund.Status.AMBIGUOUS and refund.provider_reference is None

    assert post(REVERSAL_RESULT, reversal_result(conversation_id="AG_never_seen")) == (200, DARAJA_OK)
    refund.refresh_from_db()
    assert refund.status == Refund.Status.REFUNDED and not refund.needs_review
    assert refund.provider_reference == "AG_never_seen"  # learnt from the result
    assert reversals(donation) == [Decimal("-1000")]


@responses.activate
def test_a_result_is_matched_within_its_own_rail_only(maker, checker):
    """A B2C result naming the reference of an MTN payout settles nothing."""
    partner = TreatmentPartnerFactory(payout_provider="mtn", payout_msisdn="46733123470")
    patient = PatientFactory(currency="EUR", funding_goal=Decimal("100"), funding_received=Decimal("100"),
                             status=Patient.Status.FULLY_FUNDED, treatment_partner=partner)  # fmt: skip
    payout = Payout.objects.create(
        reference="RHCI-PO-mtn00000000001", patient=patient, treatment_partner=partner, provider="mtn",
        msisdn=partner.payout_msisdn, amount=Decimal("100"), currency="EUR", status=Payout.Status.SENT,
        requested_by=maker, approved_by=checker, provider_reference="3f6c1a9e-0000-4000-8000-000000000001",
    )  # fmt: skip
    body = {"Result": {"ResultType": 0, "ResultCode": 2001, "ResultDesc": "The initiator information is invalid.",
                       "OriginatorConversationID": payout.reference, "ConversationID": "AG_x"}}  # fmt: skip
    post(B2C_RESULT, body)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.SENT  # still awaiting MTN's own result; funds still committed


# --- settings mean what they say ---------------------------------------------------------------------------


@pytest.fixture
def trust_off(settings):
    settings.PAYMENTS_APPLY_TRUSTED_CALLBACKS = False


@pytest.fixture
def mpesa_payout(maker):
    partner = TreatmentPartnerFactory(payout_provider="mpesa", payout_msisdn="254708374149", country="KE")
    patient = PatientFactory(currency="KES", funding_goal=Decimal("5000"), funding_received=Decimal("5000"),
                             status=Patient.Status.FULLY_FUNDED, treatment_partner=partner)  # fmt: skip
    return payout_request(patient=patient, amount=Decimal("5000"), requested_by=maker)


@responses.activate
@pytest.mark.usefixtures("trust_off")
def test_with_trust_off_a_b2c_failure_on_the_secret_url_frees_no_funds(mpesa_payout, checker):
    responses.get(TOKEN_URL, json={"access_token": "t", "expires_in": "3599"})
    responses.post(B2C_URL, json=reversal_answer("AG_b2c_1"))
    payout = payout_approve(payout_id=mpesa_payout.pk, approved_by=checker)
    body = {"Result": {"ResultType": 0, "ResultCode": 2001, "ResultDesc": "The initiator information is invalid.",
                       "OriginatorConversationID": payout.reference, "ConversationID": "AG_b2c_1"}}  # fmt: skip
    assert post(B2C_RESULT, body)[0] == 200
    payout.refresh_from_db()
    assert payout.status == Payout.Status.SENT  # a forged failure would otherwise free the money to pay twice
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REVIEW


@responses.activate
@pytest.mark.usefixtures("trust_off")
def test_with_trust_off_a_reversal_result_is_held_until_a_person_applies_it(maker, checker):
    from payments.services.dispatch import money_out_apply_held

    donation = paid_donation()
    responses.get(TOKEN_URL, json={"access_token": "t", "expires_in": "3599"})
    responses.post(REVERSAL_URL, json=reversal_answer())
    refund = refund_approve(refund_id=refund_of(donation, maker).pk, approved_by=checker)
    assert post(REVERSAL_RESULT, reversal_result())[0] == 200
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SENT and reversals(donation) == []
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REVIEW
    assert any("refund result(s) held" in alert for alert in watchdog_alerts())

    settled = money_out_apply_held(event_id=event.pk, applied_by=checker)
    assert settled.status == Refund.Status.REFUNDED and reversals(donation) == [Decimal("-1000")]
    assert AuditEntry.objects.filter(action="refund.apply_result", actor=checker).exists()
    event.refresh_from_db()
    assert event.status == CallbackEvent.Status.PROCESSED


@responses.activate
@pytest.mark.parametrize("path", ["/webhooks/mpesa/reversal/timeout/", "/webhooks/mpesa/reversal/timeout/guess/"])
def test_an_unauthenticated_reversal_queue_timeout_moves_nothing(maker, checker, path):
    donation = paid_donation()
    responses.get(TOKEN_URL, json={"access_token": "t", "expires_in": "3599"})
    responses.post(REVERSAL_URL, json=reversal_answer())
    refund = refund_approve(refund_id=refund_of(donation, maker).pk, approved_by=checker)
    post(path, reversal_result(1))
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SENT and not refund.needs_review


# --- nothing stuck in silence -------------------------------------------------------------------------------


@pytest.fixture
def airtel_rail(settings):
    cache.clear()
    settings.PAYMENT_PROVIDERS = {**settings.PAYMENT_PROVIDERS, "airtel": {
        **settings.PAYMENT_PROVIDERS["airtel"], **airtel.KWARGS, "country": "UG", "currency": "UGX"}}  # fmt: skip
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(airtel.TOKEN_URL, json=airtel.fixture("token_success.json"))
        yield mock
    cache.clear()


def test_an_airtel_refund_answered_in_progress_goes_to_a_person_at_once(airtel_rail, maker, checker):
    donation = paid_donation(provider="airtel", currency="UGX", amount="5000", receipt="MP210603.1234.L06941")
    in_progress = {
        "data": {"transaction": {"airtel_money_id": "CI210104.1549.C00029", "status": "TIP"}},
        "status": {"code": "200", "message": "SUCCESS", "result_code": "ESB000010", "success": True},
    }
    airtel_rail.post(airtel.REFUND_URL, json=in_progress)
    refund = refund_approve(refund_id=refund_of(donation, maker).pk, approved_by=checker)
    assert refund.status == Refund.Status.AMBIGUOUS and refund.needs_review
    assert any("refund" in alert and "ambiguous" in alert for alert in watchdog_alerts())


@pytest.fixture
def mtn_rail(settings):
    cache.clear()
    settings.PAYMENT_PROVIDERS = {**settings.PAYMENT_PROVIDERS, "mtn": {**settings.PAYMENT_PROVIDERS["mtn"],
                                                                         **mtn.KWARGS}}  # fmt: skip
    settings.SITE_URL = mtn.SITE_URL
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(mtn.DISBURSEMENT_TOKEN_URL, json=mtn.fixture("token_success.json"))
        yield mock
    cache.clear()


def test_an_mtn_payout_stuck_sending_is_polled_by_the_id_stored_before_sending(mtn_rail, maker, checker):
    partner = TreatmentPartnerFactory(payout_provider="mtn", payout_msisdn="46733123470")
    patient = PatientFactory(currency="EUR", funding_goal=Decimal("150000"), funding_received=Decimal("150000"),
                             status=Patient.Status.FULLY_FUNDED, treatment_partner=partner)  # fmt: skip
    payout = payout_request(patient=patient, amount=Decimal("150000"), requested_by=maker)

    def killed_mid_send(request):
        raise KeyboardInterrupt  # the process dies after the claim, before any answer is recorded

    mtn_rail.add_callback(responses.POST, mtn.TRANSFER_URL, callback=killed_mid_send)
    with pytest.raises(KeyboardInterrupt):
        payout_approve(payout_id=payout.pk, approved_by=checker)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.SENDING and payout.provider_reference  # the X-Reference-Id we chose
    assert payouts_reconcile() == 0  # not yet: it may still be sending
    Payout.objects.filter(pk=payout.pk).update(approved_at=timezone.now() - timedelta(minutes=11))
    assert any("sending" in alert for alert in watchdog_alerts())

    mtn_rail.get(f"{mtn.TRANSFER_URL}/{payout.provider_reference}", json=mtn.fixture("transfer_status_successful.json"))
    assert payouts_reconcile() == 1
    payout.refresh_from_db()
    assert payout.status == Payout.Status.PAID and payout.receipt == "363440463"


def test_an_mtn_refund_result_for_another_amount_is_held_not_applied(mtn_rail, maker, checker):
    donation = paid_donation(provider="mtn", currency="EUR", amount="50000", reference=mtn.X_REFERENCE_ID)
    refund = refund_of(donation, maker, amount=Decimal("20000"))
    Refund.objects.filter(pk=refund.pk).update(status=Refund.Status.SENT, provider_reference=mtn.REFUND_REFERENCE_ID,
                                               reference=mtn.REFUND_REFERENCE)  # fmt: skip
    says = mtn.fixture("refund_status_successful.json") | {"amount": "25000"}
    mtn_rail.get(f"{mtn.REFUND_URL}/{mtn.REFUND_REFERENCE_ID}", json=says)
    callback = mtn.fixture("callback_refund_successful.json") | {"amount": "25000"}
    data = json.dumps(callback)
    assert Client().put("/webhooks/mtn/refund/", data=data, content_type="application/json").status_code == 200
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SENT and refund.needs_review and "25000" in refund.result_desc
    assert reversals(donation) == []


@responses.activate
def test_the_watchdog_names_every_payout_and_refund_waiting_for_a_person(mpesa_payout, maker, checker):
    responses.get(TOKEN_URL, json={"access_token": "t", "expires_in": "3599"})
    responses.post(B2C_URL, body=requests.ReadTimeout("slow"))
    assert payout_approve(payout_id=mpesa_payout.pk, approved_by=checker).status == Payout.Status.AMBIGUOUS
    alerts = watchdog_alerts()
    assert any("1 payout(s) ambiguous" in alert for alert in alerts), alerts
    donation = paid_donation()
    refund = refund_of(donation, maker)
    Refund.objects.filter(pk=refund.pk).update(status=Refund.Status.SENT, sent_at=timezone.now() - timedelta(hours=2))
    assert any("1 refund(s) sent more than" in alert for alert in watchdog_alerts())


# --- verify_ledger proves the whole book --------------------------------------------------------------------


def verify() -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("verify_ledger", stdout=out, stderr=out)
    except SystemExit as exit_:
        return int(exit_.code or 0), out.getvalue()
    except Exception as error:  # CommandError: exit 1 from the command line
        return 1, out.getvalue() + str(error)
    return 0, out.getvalue()


def test_verify_ledger_is_ok_on_a_clean_book():
    paid_donation()
    assert verify()[0] == 0


def test_verify_ledger_finds_a_refund_marked_refunded_without_its_reversal(maker, checker):
    donation = paid_donation()
    Refund.objects.filter(pk=refund_of(donation, maker).pk).update(status=Refund.Status.REFUNDED)
    code, out = verify()
    assert code == 1 and donation.reference in out and "reversal" in out


def test_verify_ledger_finds_a_completed_donation_without_its_credit():
    donation = paid_donation()
    Allocation.objects.filter(donation=donation).delete()
    Patient.objects.filter(pk=donation.patient_id).update(funding_received=0)  # the cache agrees: only the book knows
    code, out = verify()
    assert code == 1 and donation.reference in out and "credit" in out


def test_verify_ledger_finds_a_reversal_without_a_refund():
    donation = paid_donation()
    target = Allocation.target_for(donation.patient)
    Allocation.objects.create(donation=donation, patient=donation.patient, target=target, amount=Decimal("-1000"),
                              currency="KES", entry=Allocation.Entry.REVERSAL)  # fmt: skip
    Patient.objects.filter(pk=donation.patient_id).update(funding_received=0)
    code, out = verify()
    assert code == 1 and donation.reference in out and "refund" in out


# --- in the admin ------------------------------------------------------------------------------------------


@pytest.fixture
def admin_client(checker):
    from config.tests.helpers import login_with_second_factor

    person = staff_user("finance", "payments.view_refund", "payments.view_payout", "payments.view_callbackevent",
                        "payments.resolve_refund", "payments.resolve_payout")  # fmt: skip
    client = Client()
    login_with_second_factor(client, person)
    client.person = person
    return client


@responses.activate
@pytest.mark.usefixtures("trust_off")
def test_a_person_applies_a_held_result_and_resolves_by_hand_in_the_admin(admin_client, maker, checker):
    donation = paid_donation()
    responses.get(TOKEN_URL, json={"access_token": "t", "expires_in": "3599"})
    responses.post(REVERSAL_URL, json=reversal_answer())
    refund = refund_approve(refund_id=refund_of(donation, maker).pk, approved_by=checker)
    post(REVERSAL_RESULT, reversal_result())
    event = CallbackEvent.objects.get()
    page = admin_client.get(f"/admin/payments/refund/{refund.pk}/change/").content.decode()
    assert f"#{event.pk} reversal_result: Review" in page  # the held result is shown on the refund

    action = {"action": "apply_held_money_out", "_selected_action": [event.pk]}
    answer = admin_client.post("/admin/payments/callbackevent/", action, follow=True).content.decode()
    assert refund.reference in answer
    refund.refresh_from_db()
    assert refund.status == Refund.Status.REFUNDED and reversals(donation) == [Decimal("-1000")]
    again = admin_client.post("/admin/payments/callbackevent/", action, follow=True).content.decode()
    assert "not held" in again and reversals(donation) == [Decimal("-1000")]  # applied once


@responses.activate
def test_an_ambiguous_payout_is_resolved_as_done_with_its_receipt_in_the_admin(admin_client, mpesa_payout, checker):
    responses.get(TOKEN_URL, json={"access_token": "t", "expires_in": "3599"})
    responses.post(B2C_URL, body=requests.ReadTimeout("slow"))
    payout = payout_approve(payout_id=mpesa_payout.pk, approved_by=checker)
    action = {"action": "resolve_as_done", "_selected_action": [payout.pk]}
    form = admin_client.post("/admin/payments/payout/", action).content.decode()
    assert "receipt" in form.lower()  # first the question
    admin_client.post("/admin/payments/payout/", {**action, "apply": "1", "receipt": "SG632NMUAB"}, follow=True)
    payout.refresh_from_db()
    assert (payout.status, payout.receipt, payout.needs_review) == (Payout.Status.PAID, "SG632NMUAB", False)
    assert AuditEntry.objects.filter(action="payout.resolve", actor=admin_client.person).exists()
    assert not [alert for alert in watchdog_alerts() if "payout" in alert]
