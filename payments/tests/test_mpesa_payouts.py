"""B2C payouts to treatment partners under maker-checker (service level; Daraja mocked with `responses`)."""

import json
from decimal import Decimal

import pytest
import requests
import responses
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client

from patients.models import Patient
from patients.tests.factories import PatientFactory, TreatmentPartnerFactory
from payments.models import CallbackEvent, Payout
from payments.services.payouts import PayoutRefused, payout_approve, payout_available, payout_request
from payments.tests.factories import CHECKER_PERMISSIONS, MAKER_PERMISSIONS, staff_user

pytestmark = pytest.mark.django_db

API = "https://daraja.test"
B2C_URL = f"{API}/mpesa/b2c/v3/paymentrequest"
SECRET = "b2c-secret-token"
ACK = {"ResultCode": 0, "ResultDesc": "Accepted"}


@pytest.fixture(autouse=True)
def mpesa_settings(settings):
    cache.clear()
    settings.PAYMENT_PROVIDERS = {
        **settings.PAYMENT_PROVIDERS,
        "mpesa": {
            **settings.PAYMENT_PROVIDERS["mpesa"],
            "consumer_key": "k",
            "consumer_secret": "s",
            "shortcode": "174379",
            "passkey": "p",
            "api_url": API,
            "b2c_shortcode": "600992",
            "b2c_token": SECRET,
            "initiator_name": "testapi",
            "security_credential": "encrypted-credential",
            "allowed_ips": [],
            "ip_allowlist_strict": False,
        },
    }
    settings.SITE_URL = "https://donate.example.org"
    yield settings
    cache.clear()


@pytest.fixture
def patient():
    partner = TreatmentPartnerFactory(payout_provider="mpesa", payout_msisdn="254708374149", country="KE")
    return PatientFactory(
        code="PAT-KE-20",
        currency="KES",
        funding_goal=Decimal("50000"),
        funding_received=Decimal("50000"),
        status=Patient.Status.FULLY_FUNDED,
        treatment_partner=partner,
    )


@pytest.fixture
def maker():
    return staff_user("maker", *MAKER_PERMISSIONS)


@pytest.fixture
def checker():
    return staff_user("checker", *CHECKER_PERMISSIONS)


def mock_b2c(status=200, body=None):
    responses.get(f"{API}/oauth/v1/generate", json={"access_token": "t", "expires_in": "3599"})
    responses.post(
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


def result_body(payout: Payout, code=0, desc="The service request is processed successfully.") -> dict:
    result = {
        "ResultType": 0,
        "ResultCode": code,
        "ResultDesc": desc,
        "OriginatorConversationID": payout.reference,
        "ConversationID": "AG_20240706_20106e9209f64bebd05b",
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


def post(path: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = Client().post(path, data=data, content_type="application/json")
    return response.status_code, response.json()


def b2c_calls() -> list:
    return [c for c in responses.calls if c.request.url == B2C_URL]


@responses.activate
def test_approval_by_the_requester_is_refused_even_with_both_permissions(patient):
    mock_b2c()
    both = staff_user("both-roles", *MAKER_PERMISSIONS, *CHECKER_PERMISSIONS)
    payout = payout_request(patient=patient, amount=Decimal("20000"), requested_by=both)
    with pytest.raises(PayoutRefused, match="someone other than its requester"):
        payout_approve(payout_id=payout.pk, approved_by=both)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.REQUESTED
    assert b2c_calls() == []


@responses.activate
def test_approval_by_a_second_user_sends_once(patient, maker, checker):
    mock_b2c()
    payout = payout_request(patient=patient, amount=Decimal("20000"), requested_by=maker)
    payout = payout_approve(payout_id=payout.pk, approved_by=checker)
    assert payout.status == Payout.Status.SENT
    assert payout.approved_by == checker
    assert payout.conversation_id == "AG_20240706_20106e9209f64bebd05b"
    [call] = b2c_calls()
    sent = json.loads(call.request.body)
    assert sent["OriginatorConversationID"] == payout.reference
    assert sent["InitiatorName"] == "testapi" and sent["SecurityCredential"] == "encrypted-credential"
    assert sent["CommandID"] == "BusinessPayment" and sent["Amount"] == 20000
    assert sent["PartyA"] == "600992" and sent["PartyB"] == "254708374149"
    assert sent["ResultURL"] == f"https://donate.example.org/webhooks/mpesa/b2c/result/{SECRET}/"
    assert sent["QueueTimeOutURL"] == f"https://donate.example.org/webhooks/mpesa/b2c/timeout/{SECRET}/"
    assert "Occassion" in sent
    with pytest.raises(PayoutRefused, match="not awaiting approval"):
        payout_approve(payout_id=payout.pk, approved_by=checker)
    assert len(b2c_calls()) == 1


@responses.activate
def test_timeout_then_result_resolves_it(patient, maker, checker):
    mock_b2c()
    payout = payout_approve(
        payout_id=payout_request(patient=patient, amount=Decimal("20000"), requested_by=maker).pk, approved_by=checker
    )
    timeout = result_body(payout, code=1, desc="The service request has timed out.")
    assert post(f"/webhooks/mpesa/b2c/timeout/{SECRET}/", timeout) == (200, ACK)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.AMBIGUOUS and payout.needs_review
    assert len(b2c_calls()) == 1  # never re-sent
    assert post(f"/webhooks/mpesa/b2c/result/{SECRET}/", result_body(payout)) == (200, ACK)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.PAID and payout.receipt == "SG632NMUAB"
    patient.refresh_from_db()
    assert patient.status == Patient.Status.IN_TREATMENT
    assert post(f"/webhooks/mpesa/b2c/result/{SECRET}/", result_body(payout)) == (200, ACK)  # duplicate
    assert Payout.objects.get().status == Payout.Status.PAID


@responses.activate
def test_failed_result(patient, maker, checker):
    mock_b2c()
    payout = payout_approve(
        payout_id=payout_request(patient=patient, amount=Decimal("1000"), requested_by=maker).pk, approved_by=checker
    )
    body = result_body(payout, code=2001, desc="The initiator information is invalid.")
    assert post(f"/webhooks/mpesa/b2c/result/{SECRET}/", body) == (200, ACK)
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


@responses.activate
def test_staff_without_the_permission_cannot_approve_send_or_resolve(patient, maker):
    """Admin powers are permissions, checked by the service itself (not only by the admin's buttons)."""
    from payments.services.payouts import payout_resolve

    mock_b2c()
    plain_staff = staff_user("plain-staff", "payments.view_payout")
    payout = payout_request(patient=patient, amount=Decimal("10"), requested_by=maker)
    with pytest.raises(PayoutRefused, match="approve_payout"):
        payout_approve(payout_id=payout.pk, approved_by=plain_staff)
    with pytest.raises(PayoutRefused, match="add_payout"):
        payout_request(patient=patient, amount=Decimal("10"), requested_by=plain_staff)
    with pytest.raises(PayoutRefused, match="resolve_payout"):
        payout_resolve(payout_id=payout.pk, paid=False, resolved_by=plain_staff)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.REQUESTED and b2c_calls() == []


def test_partner_without_mpesa_number_refused(maker):
    partner = TreatmentPartnerFactory(payout_provider="mpesa", payout_msisdn="")
    patient = PatientFactory(currency="KES", funding_received=Decimal("1000"), treatment_partner=partner)
    with pytest.raises(PayoutRefused, match="M-Pesa payout number"):
        payout_request(patient=patient, amount=Decimal("10"), requested_by=maker)


def test_partner_without_a_payout_provider_refused(maker):
    patient = PatientFactory(currency="KES", funding_received=Decimal("1000"))
    with pytest.raises(PayoutRefused, match="no payout provider"):
        payout_request(patient=patient, amount=Decimal("10"), requested_by=maker)


@responses.activate
def test_b2c_timing_out_after_sending_is_ambiguous_and_not_resent(patient, maker, checker):
    responses.get(f"{API}/oauth/v1/generate", json={"access_token": "t", "expires_in": "3599"})
    responses.post(B2C_URL, body=requests.ReadTimeout("slow"))
    payout = payout_approve(
        payout_id=payout_request(patient=patient, amount=Decimal("1000"), requested_by=maker).pk, approved_by=checker
    )
    assert payout.status == Payout.Status.AMBIGUOUS and payout.needs_review
    assert len(b2c_calls()) == 1
    assert payout_available(patient=patient) == Decimal("49000")  # still committed until resolved


@responses.activate
def test_b2c_that_never_connected_is_failed_and_frees_the_funds(patient, maker, checker):
    responses.get(f"{API}/oauth/v1/generate", json={"access_token": "t", "expires_in": "3599"})
    responses.post(B2C_URL, body=requests.ConnectTimeout("no route"))
    payout = payout_approve(
        payout_id=payout_request(patient=patient, amount=Decimal("1000"), requested_by=maker).pk, approved_by=checker
    )
    assert payout.status == Payout.Status.FAILED  # nothing left us: nothing can have moved
    assert payout_available(patient=patient) == Decimal("50000")


@responses.activate
def test_refused_b2c_is_failed(patient, maker, checker):
    mock_b2c(
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
    status, answer = post(f"/webhooks/mpesa/b2c/result/{SECRET}/", body)
    assert status == 400 and answer["code"] == "INVALID_FORMAT"
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REJECTED


def test_unknown_payout_is_404():
    body = {"Result": {"ResultCode": 0, "OriginatorConversationID": "nope", "ConversationID": "AG_x"}}
    status, _ = post(f"/webhooks/mpesa/b2c/result/{SECRET}/", body)
    assert status == 404


# --- admin (maker-checker in the Django admin) -------------------------------------------------------


@pytest.fixture
def admin_users():
    import importlib
    import sys

    from django.urls import clear_url_caches

    import payments.payout_admin  # noqa: F401 (registers PayoutAdmin if payments/admin.py has not yet)

    if "config.urls" in sys.modules:  # admin URLs are fixed when the URLconf loads: rebuild them once
        importlib.reload(sys.modules["config.urls"])
        clear_url_caches()
    users = get_user_model().objects
    return (
        users.create_superuser("maker-admin", password="x", email="m@example.org"),
        users.create_superuser("checker-admin", password="x", email="c@example.org"),
    )


@responses.activate
def test_admin_request_then_approval_by_another_staff_user(patient, admin_users):
    mock_b2c()
    maker, checker = admin_users
    client = Client()
    client.force_login(maker)
    response = client.post("/admin/payments/payout/add/", {"patient": patient.pk, "amount": "20000"})
    assert response.status_code == 302, response.content[:2000]
    payout = Payout.objects.get()
    assert payout.requested_by == maker and payout.status == Payout.Status.REQUESTED
    changelist = "/admin/payments/payout/"
    action = {"action": "approve_and_send", "_selected_action": [payout.pk]}
    response = client.post(changelist, action, follow=True)
    assert "someone other than its requester" in response.content.decode()
    assert Payout.objects.get().status == Payout.Status.REQUESTED
    client.force_login(checker)
    client.post(changelist, action, follow=True)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.SENT and payout.approved_by == checker
    assert len(b2c_calls()) == 1


def test_admin_refuses_an_over_limit_request(patient, admin_users):
    client = Client()
    client.force_login(admin_users[0])
    response = client.post("/admin/payments/payout/add/", {"patient": patient.pk, "amount": "50001"})
    assert response.status_code == 200
    assert "not yet paid out" in response.content.decode()
    assert Payout.objects.count() == 0


@responses.activate
def test_ambiguous_payout_resolved_by_hand(patient, maker, checker):
    from payments.services.payouts import payout_resolve

    responses.get(f"{API}/oauth/v1/generate", json={"access_token": "t", "expires_in": "3599"})
    responses.post(B2C_URL, body=requests.ReadTimeout("slow"))
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
    assert len(b2c_calls()) == 1


def test_cancel_a_request_frees_the_funds(patient, maker, checker):
    from payments.services.payouts import payout_cancel

    payout = payout_request(patient=patient, amount=Decimal("50000"), requested_by=maker)
    assert payout_available(patient=patient) == 0
    payout_cancel(payout_id=payout.pk, cancelled_by=checker)
    assert payout_available(patient=patient) == Decimal("50000")
    with pytest.raises(PayoutRefused):
        payout_approve(payout_id=payout.pk, approved_by=checker)
