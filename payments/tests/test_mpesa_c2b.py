"""M-Pesa C2B paybill: validation, confirmation (a completed donation, credited once), registration."""

import json
from decimal import Decimal
from io import StringIO

import pytest
import responses
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.test import Client

from donor.models import Allocation, Donation
from donor.tests.factories import DonationFactory
from patients.tests.factories import PatientFactory
from payments.models import CallbackEvent, Payment

pytestmark = pytest.mark.django_db

API = "https://daraja.test"
SECRET = "c2b-secret-token"
SHORTCODE = "600984"
VALIDATION = f"/webhooks/mpesa/c2b/validation/{SECRET}/"
CONFIRMATION = f"/webhooks/mpesa/c2b/confirmation/{SECRET}/"
ACK = {"ResultCode": 0, "ResultDesc": "Accepted"}
ACCEPT = {"ResultCode": "0", "ResultDesc": "Accepted"}


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
            "c2b_shortcode": SHORTCODE,
            "c2b_token": SECRET,
            "allowed_ips": [],
            "ip_allowlist_strict": False,
        },
    }
    settings.SITE_URL = "https://donate.example.org"
    yield settings
    cache.clear()


@pytest.fixture
def patient():
    return PatientFactory(code="PAT-KE-07", currency="KES", funding_goal=Decimal("100000"))


def c2b_body(bill_ref="PAT-KE-07", amount="500.00", trans_id="RKL51ZDR4F", **overrides) -> dict:
    body = {
        "TransactionType": "Pay Bill",
        "TransID": trans_id,
        "TransTime": "20231121121325",
        "TransAmount": amount,
        "BusinessShortCode": SHORTCODE,
        "BillRefNumber": bill_ref,
        "InvoiceNumber": "",
        "OrgAccountBalance": "",
        "ThirdPartyTransID": "",
        "MSISDN": "2547 ***** 126",
        "FirstName": "NICHOLAS",
        "MiddleName": "",
        "LastName": "",
    }
    body.update(overrides)
    return body


def post(path: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = Client().post(path, data=data, content_type="application/json")
    return response.status_code, response.json()


# --- validation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bill_ref", ["PAT-KE-07", "pat-ke-07", "  PAT-KE-07 ", "PAT-KE -07"])
def test_validation_accepts_a_patient_code_case_and_spaces_ignored(patient, bill_ref):
    assert post(VALIDATION, c2b_body(bill_ref=bill_ref)) == (200, ACCEPT)


def test_validation_accepts_a_donation_reference(patient):
    donation = DonationFactory(patient=patient, currency="KES", amount=Decimal("500"))
    assert post(VALIDATION, c2b_body(bill_ref=donation.reference.lower())) == (200, ACCEPT)


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"BillRefNumber": "NOPE-123"}, "C2B00012"),
        ({"BillRefNumber": ""}, "C2B00012"),
        ({"TransAmount": "5.00"}, "C2B00013"),  # below the KES minimum donation
        ({"TransAmount": "250001.00"}, "C2B00013"),
        ({"BusinessShortCode": "600000"}, "C2B00015"),
    ],
)
def test_validation_rejects_with_the_right_code(patient, overrides, code):
    status, body = post(VALIDATION, c2b_body(**overrides))
    assert status == 200
    assert body == {"ResultCode": code, "ResultDesc": "Rejected"}


def test_validation_rejects_a_patient_in_another_currency():
    PatientFactory(code="PAT-TZ-01", currency="TZS")
    assert post(VALIDATION, c2b_body(bill_ref="PAT-TZ-01"))[1]["ResultCode"] == "C2B00012"


@pytest.mark.parametrize("path", [VALIDATION, CONFIRMATION])
@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1]",
        json.dumps({k: v for k, v in c2b_body().items() if k != "TransID"}).encode(),
        json.dumps(c2b_body(TransID="")).encode(),
        json.dumps(c2b_body(TransAmount="lots")).encode(),
        json.dumps(c2b_body(TransAmount=None)).encode(),
        json.dumps(c2b_body(TransAmount=True)).encode(),
        json.dumps(c2b_body(BillRefNumber=["PAT-KE-07"])).encode(),
        json.dumps({k: v for k, v in c2b_body().items() if k != "BillRefNumber"}).encode(),
        json.dumps(c2b_body(TransTime={"when": "now"})).encode(),
    ],
)
def test_missing_or_wrong_typed_fields_are_a_clear_400_and_stored(patient, path, body):
    status, answer = post(path, body)
    assert status == 400
    assert answer["code"] == "INVALID_FORMAT" and answer["message"]
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REJECTED and "malformed" in event.error
    assert Allocation.objects.count() == 0


def test_wrong_token_is_401(patient):
    status, answer = post("/webhooks/mpesa/c2b/confirmation/wrong/", c2b_body())
    assert status == 401 and answer["code"] == "AUTH_REQUIRED"
    assert Donation.objects.count() == 0


# --- confirmation ----------------------------------------------------------------------------------------


def test_confirmation_creates_a_completed_donation_for_the_patient(patient):
    assert post(CONFIRMATION, c2b_body(bill_ref="pat-ke-07")) == (200, ACK)
    donation = Donation.objects.get()
    assert donation.status == Donation.Status.COMPLETED
    assert donation.patient == patient and donation.amount == Decimal("500.00") and donation.currency == "KES"
    assert donation.donor.name == "NICHOLAS"
    payment = Payment.objects.get()
    # A masked (or, since 2024, hashed) MSISDN is not a phone number: kept as the payer's reference only.
    assert donation.donor.phone == "" and payment.msisdn == ""
    assert payment.payer_reference == "2547 ***** 126"
    assert payment.provider == "mpesa" and payment.channel == "c2b"
    assert payment.provider_reference == "RKL51ZDR4F" and payment.receipt == "RKL51ZDR4F"
    assert payment.status == Payment.Status.SUCCEEDED
    patient.refresh_from_db()
    assert patient.funding_received == Decimal("500.00")
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.PROCESSED


def test_duplicate_confirmation_is_credited_once(patient):
    body = c2b_body()
    assert post(CONFIRMATION, body) == (200, ACK)
    assert post(CONFIRMATION, body) == (200, ACK)  # the same bytes
    assert post(CONFIRMATION, json.dumps(body, indent=2).encode()) == (200, ACK)  # the same TransID
    assert Donation.objects.count() == 1
    assert Allocation.objects.count() == 1
    patient.refresh_from_db()
    assert patient.funding_received == Decimal("500.00")


def test_confirmation_without_the_token_is_held_for_review(patient):
    assert post("/webhooks/mpesa/c2b/confirmation/", c2b_body()) == (200, ACK)
    assert Donation.objects.count() == 0
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REVIEW


def test_confirmation_for_an_unknown_account_goes_to_the_general_fund_for_review(patient):
    assert post(CONFIRMATION, c2b_body(bill_ref="WHO-KNOWS")) == (200, ACK)
    donation = Donation.objects.get()
    assert donation.patient is None and donation.status == Donation.Status.COMPLETED
    assert donation.needs_review
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REVIEW


def test_confirmation_naming_a_pending_donation_completes_it(patient):
    donation = DonationFactory(patient=patient, currency="KES", amount=Decimal("500.00"))
    assert post(CONFIRMATION, c2b_body(bill_ref=donation.reference)) == (200, ACK)
    donation.refresh_from_db()
    assert donation.status == Donation.Status.COMPLETED
    assert Donation.objects.count() == 1


def test_neutral_paybill_paths(patient):
    assert post(f"/webhooks/paybill/validation/{SECRET}", c2b_body()) == (200, ACCEPT)
    assert post(f"/webhooks/paybill/confirmation/{SECRET}", c2b_body()) == (200, ACK)
    assert Donation.objects.get().status == Donation.Status.COMPLETED


# --- registration --------------------------------------------------------------------------------------


@responses.activate
def test_register_command_sends_the_token_urls():
    responses.get(f"{API}/oauth/v1/generate", json={"access_token": "t", "expires_in": "3599"})
    responses.post(
        f"{API}/mpesa/c2b/v2/registerurl",
        json={"OriginatorCoversationID": "x", "ResponseCode": "0", "ResponseDescription": "Success"},
    )
    out = StringIO()
    call_command("mpesa_register_c2b", stdout=out)
    sent = json.loads(responses.calls[1].request.body)
    assert sent == {
        "ShortCode": SHORTCODE,
        "ResponseType": "Completed",
        "ConfirmationURL": f"https://donate.example.org/webhooks/paybill/confirmation/{SECRET}/",
        "ValidationURL": f"https://donate.example.org/webhooks/paybill/validation/{SECRET}/",
    }
    assert SECRET not in out.getvalue()
    assert "Registered" in out.getvalue()


def test_register_command_refuses_urls_daraja_refuses():
    with pytest.raises(CommandError, match="mpesa"):
        call_command("mpesa_register_c2b", "--confirmation-url", "https://x.example/mpesa/c", "--dry-run")


def test_register_command_needs_a_token(settings):
    settings.PAYMENT_PROVIDERS["mpesa"]["c2b_token"] = ""
    with pytest.raises(CommandError, match="MPESA_C2B_TOKEN"):
        call_command("mpesa_register_c2b", "--dry-run")


def test_a_held_confirmation_is_credited_once_by_a_person_with_the_permission(patient, settings, client):
    from payments.tests.factories import staff_user

    settings.PAYMENTS_APPLY_TRUSTED_CALLBACKS = False  # no callback credits on its own word
    assert post(CONFIRMATION, c2b_body()) == (200, ACK)
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REVIEW and not Donation.objects.exists()

    clerk = staff_user("clerk", "payments.view_callbackevent")
    client.force_login(clerk)
    page = client.get("/admin/payments/callbackevent/").content
    assert b"accept_held_paybill" not in page  # not offered without the permission
    client.post("/admin/payments/callbackevent/", {"action": "accept_held_paybill", "_selected_action": [event.pk]})
    assert not Donation.objects.exists()

    finance = staff_user("finance", "payments.view_callbackevent", "payments.accept_held_callbackevent")
    client.force_login(finance)
    for _ in range(2):  # the second time it is no longer held
        client.post("/admin/payments/callbackevent/", {"action": "accept_held_paybill", "_selected_action": [event.pk]})
    donation = Donation.objects.get()
    assert donation.status == Donation.Status.COMPLETED and donation.patient == patient
    patient.refresh_from_db()
    assert patient.funding_received == Decimal("500.00")
    event.refresh_from_db()
    assert event.status == CallbackEvent.Status.PROCESSED
