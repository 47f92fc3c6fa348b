"""The donor API (docs/api.md): create a donation and start its AzamPay payment; read and refresh its status."""

import json
import re
from decimal import Decimal
from http.client import RemoteDisconnected

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from donor.models import Donation, Donor
from donor.tests.factories import DonationFactory
from patients.tests.factories import PatientFactory
from payments.models import Payment
from payments.tests.azampay_fakes import MNO_URL, POST_CHECKOUT_URL, STATUS_URL, fixture

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("azampay_settings")]

DONATIONS_URL = "/api/v1.0/donors/donations/"
MY_DONATIONS_URL = "/api/v1.0/donors/me/donations/"
TRANSACTION_ID = "b85e971981844a6f8888b42579655b8f"
ERROR_KEYS = {"error", "message", "code"}


@pytest.fixture
def mno_checkout(azam):
    return azam.post(MNO_URL, json=fixture("mno_checkout_success.json"))


@pytest.fixture
def patient():
    return PatientFactory(code="PAT-0042", currency="TZS", funding_goal=Decimal("1000000"))


def donation_request(patient=None, /, **fields) -> dict:
    body = {
        "patient": patient.code if patient else None,
        "amount": "5000",
        "currency": "TZS",
        "provider": "azampay",
        "channel": "Mpesa",
        "phone_number": "0712345678",
        "email": "neema@example.org",
        "name": "Neema",
        "anonymous": False,
        "message": "Get well soon",
    }
    body.update(fields)
    return body


def create(client, body: dict, **headers):
    return client.post(DONATIONS_URL, body, format="json", **headers)


# --- creating a donation --------------------------------------------------------------------------------


def test_guest_donation_prompts_the_phone_and_answers_201(api_client, patient, mno_checkout):
    response = create(api_client, donation_request(patient))

    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == {
        "id",
        "reference",
        "public_token",
        "status_url",
        "status",
        "amount",
        "currency",
        "patient",
        "payment",
        "next_action",
    }
    assert re.fullmatch(rf"RHCI-DN-{body['id']}-\d{{14}}", body["reference"])
    assert body["status"] == "pending"
    assert Decimal(body["amount"]) == Decimal("5000")
    assert (body["currency"], body["patient"]) == ("TZS", "PAT-0042")
    assert body["payment"] == {
        "provider": "azampay",
        "channel": "Mpesa",
        "status": "pending",
        "provider_reference": TRANSACTION_ID,
    }
    assert body["next_action"]["type"] == "await_phone_confirmation"
    assert "phone" in body["next_action"]["message"].lower()

    sent = json.loads(mno_checkout.calls[0].request.body)
    assert sent["accountNumber"] == "255712345678"
    assert sent["amount"] == "5000"
    assert sent["externalId"] == body["reference"]
    donation = Donation.objects.get(pk=body["id"])
    assert donation.donor.user is None
    assert (donation.donor.name, donation.donor.email, donation.donor.phone) == (
        "Neema",
        "neema@example.org",
        "255712345678",
    )


def test_donor_with_a_token_gives_as_themselves_and_sees_it_in_their_list(auth_client, donor_user, patient, azam):
    azam.post(MNO_URL, json=fixture("mno_checkout_success.json"))
    response = create(auth_client, donation_request(patient, name="", email=""))

    assert response.status_code == 201, response.json()
    donation = Donation.objects.get(reference=response.json()["reference"])
    assert donation.donor.user == donor_user
    listed = auth_client.get(MY_DONATIONS_URL).json()["results"]
    assert [d["reference"] for d in listed] == [donation.reference]


def test_general_fund_donation_needs_no_patient(api_client, mno_checkout):
    response = create(api_client, donation_request(None))
    assert response.status_code == 201, response.json()
    assert response.json()["patient"] is None


def test_card_donation_answers_a_redirect_to_the_checkout_page(api_client, patient, azam):
    page_url = fixture("post_checkout_url.json")
    azam.post(POST_CHECKOUT_URL, body=page_url, content_type="text/plain")
    response = create(api_client, donation_request(patient, channel="card", phone_number=""))

    assert response.status_code == 201, response.json()
    assert response.json()["next_action"] == {"type": "redirect", "url": page_url}
    assert response.json()["payment"]["channel"] == "card"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"phone_number": "12345"}, "phone_number"),
        ({"phone_number": ""}, "phone_number"),
        ({"patient": "PAT-9999"}, "patient"),
        ({"currency": "KES"}, "currency"),
        ({"amount": "100"}, "amount"),
        ({"amount": "five thousand"}, "amount"),
        ({"amount": "5000.50"}, "amount"),
        ({"channel": "Vodafone"}, "channel"),
        ({"channel": ""}, "channel"),
        ({"provider": "paypal"}, "provider"),
    ],
    ids=[
        "bad-phone",
        "no-phone",
        "unknown-patient",
        "currency-the-provider-cannot-take",
        "amount-below-limit",
        "amount-not-a-number",
        "fractional-shillings",
        "unknown-channel",
        "no-channel",
        "unknown-provider",
    ],
)
def test_invalid_donation_is_a_400_naming_the_field(api_client, patient, azam, fields, field):
    response = create(api_client, donation_request(patient, **fields))

    assert response.status_code == 400
    body = response.json()
    assert ERROR_KEYS <= set(body)
    assert (body["error"], body["code"]) == ("Bad Request", "VALIDATION_ERROR")
    assert field in body["errors"], body
    assert isinstance(body["errors"][field], list) and body["errors"][field]
    assert not Donation.objects.exists()
    assert not [c for c in azam.calls if c.request.url == MNO_URL]


def test_currency_other_than_the_patients_is_a_400_on_currency(api_client, azam):
    kenyan = PatientFactory(currency="KES")
    response = create(api_client, donation_request(kenyan))

    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert "KES" in response.json()["errors"]["currency"][0]
    assert not Donation.objects.exists()


def test_provider_refusal_is_a_502_and_the_donation_is_kept_as_failed(api_client, patient, azam):
    azam.post(MNO_URL, json=fixture("mno_checkout_invalid_vendor.json"))
    response = create(api_client, donation_request(patient))

    assert response.status_code == 502
    body = response.json()
    assert set(body) == {"error", "message", "code", "reference"}
    assert body["code"] == "PROVIDER_ERROR"
    assert "Invalid Vendor" in body["message"]
    donation = Donation.objects.get(reference=body["reference"])
    assert donation.status == Donation.Status.FAILED
    assert donation.payments.get().status == Payment.Status.FAILED


def refused() -> requests.ConnectionError:
    """What requests raises when nothing listens: the connection was never made, nothing was sent."""
    return requests.ConnectionError(MaxRetryError(None, MNO_URL, NewConnectionError(None, "Connection refused")))


def test_provider_unreachable_is_a_502_and_the_donation_is_kept_as_failed(api_client, patient, azam):
    checkout = azam.post(MNO_URL, body=refused())
    response = create(api_client, donation_request(patient))

    assert response.status_code == 502
    assert response.json()["code"] == "PROVIDER_ERROR"
    assert Donation.objects.get(reference=response.json()["reference"]).status == Donation.Status.FAILED
    assert checkout.call_count == 1  # a money-moving POST is never retried


@pytest.mark.parametrize(
    "error",
    [
        requests.ReadTimeout("read timed out"),
        requests.ConnectionError(ProtocolError("Connection aborted.", RemoteDisconnected("closed"))),
    ],
    ids=["read-timeout", "dropped-after-sending"],
)
def test_a_charge_that_may_have_reached_the_provider_stays_pending_not_failed(api_client, patient, azam, error):
    checkout = azam.post(MNO_URL, body=error)
    response = create(api_client, donation_request(patient))

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending" and body["payment"]["status"] == "pending"
    assert "no money was taken" not in body["next_action"]["message"].lower()
    assert "do not pay again" in body["next_action"]["message"].lower()
    payment = Payment.objects.get()
    assert payment.status == Payment.Status.PENDING and payment.next_check_at is not None
    assert Donation.objects.get().status == Donation.Status.PENDING
    assert checkout.call_count == 1  # never re-sent: the status query or the callback decides


def test_provider_validation_400_is_a_502_with_a_readable_message(api_client, patient, azam):
    azam.post(MNO_URL, status=400, json=fixture("checkout_problem_details_400.json"))
    response = create(api_client, donation_request(patient))
    assert response.status_code == 502
    assert "accountNumber" in response.json()["message"]


# --- Idempotency-Key --------------------------------------------------------------------------------------


def test_same_idempotency_key_and_body_gives_the_first_answer_and_charges_once(api_client, patient, mno_checkout):
    first = create(api_client, donation_request(patient), HTTP_IDEMPOTENCY_KEY="order-7f3a")
    second = create(api_client, donation_request(patient), HTTP_IDEMPOTENCY_KEY="order-7f3a")

    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert mno_checkout.call_count == 1
    assert Donation.objects.count() == 1


def test_same_idempotency_key_with_another_body_is_a_422(api_client, patient, mno_checkout):
    create(api_client, donation_request(patient), HTTP_IDEMPOTENCY_KEY="order-7f3a")
    response = create(api_client, donation_request(patient, amount="9000"), HTTP_IDEMPOTENCY_KEY="order-7f3a")

    assert response.status_code == 422
    assert ERROR_KEYS <= set(response.json())
    assert response.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert mno_checkout.call_count == 1
    assert Donation.objects.count() == 1


def abandon_key(key: str) -> None:
    """What a first request killed mid-way leaves: a key with no answer whose lease has run out."""
    from datetime import timedelta

    from django.utils import timezone

    from payments.models import IdempotencyRecord

    IdempotencyRecord.objects.filter(key=f"donation:{key}").update(
        response_status=None, response_body=None, locked_until=timezone.now() - timedelta(seconds=1)
    )


def test_a_key_whose_first_request_died_before_creating_anything_runs_again(api_client, patient, mno_checkout):
    from payments.models import IdempotencyRecord
    from payments.services.idempotency import request_fingerprint

    body = donation_request(patient)
    IdempotencyRecord.objects.create(
        key="donation:order-dead", request_hash=request_fingerprint({"user": "guest", "body": body})
    )
    abandon_key("order-dead")

    response = create(api_client, body, HTTP_IDEMPOTENCY_KEY="order-dead")

    assert response.status_code == 201 and mno_checkout.call_count == 1
    assert Donation.objects.count() == 1


def test_a_key_whose_first_request_died_after_the_charge_resumes_it_and_never_charges_twice(
    api_client, patient, mno_checkout
):
    first = create(api_client, donation_request(patient), HTTP_IDEMPOTENCY_KEY="order-killed")
    abandon_key("order-killed")  # as if the worker died before writing the answer

    retry = create(api_client, donation_request(patient), HTTP_IDEMPOTENCY_KEY="order-killed")

    assert retry.status_code == 201
    assert retry.json()["reference"] == first.json()["reference"]
    assert mno_checkout.call_count == 1 and Donation.objects.count() == 1


def test_a_key_whose_first_request_crashed_with_its_donation_made_resumes_it(
    api_client, patient, mno_checkout, monkeypatch
):
    from payments import apis

    real_start = apis.donation_pay
    monkeypatch.setattr(apis, "donation_pay", lambda *args: (_ for _ in ()).throw(RuntimeError("worker died")))
    crashed = create(api_client, donation_request(patient), HTTP_IDEMPOTENCY_KEY="order-crash")
    assert crashed.status_code == 500 and crashed.json()["code"] == "INTERNAL_ERROR"
    monkeypatch.setattr(apis, "donation_pay", real_start)

    retry = create(api_client, donation_request(patient), HTTP_IDEMPOTENCY_KEY="order-crash")

    assert retry.status_code == 201
    assert Donation.objects.count() == 1 and Payment.objects.count() == 1  # the payment started once, now
    assert mno_checkout.call_count == 1


def test_a_key_still_held_by_a_running_first_request_is_a_409(api_client, patient, mno_checkout, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from payments.models import IdempotencyRecord
    from payments.services import idempotency
    from payments.services.idempotency import request_fingerprint

    body = donation_request(patient)
    IdempotencyRecord.objects.create(
        key="donation:order-busy",
        request_hash=request_fingerprint({"user": "guest", "body": body}),
        locked_until=timezone.now() + timedelta(minutes=5),
    )
    monkeypatch.setattr(idempotency, "WAIT_FOR_FIRST_SECONDS", 0.2)
    response = create(api_client, body, HTTP_IDEMPOTENCY_KEY="order-busy")
    assert response.status_code == 409 and response.json()["code"] == "IDEMPOTENCY_IN_PROGRESS"
    assert mno_checkout.call_count == 0


def test_different_idempotency_keys_are_different_donations(api_client, patient, azam):
    azam.post(MNO_URL, json=fixture("mno_checkout_success.json"))
    azam.post(MNO_URL, json=fixture("mno_checkout_success.json") | {"transactionId": "c" * 32})
    first = create(api_client, donation_request(patient), HTTP_IDEMPOTENCY_KEY="order-1")
    second = create(api_client, donation_request(patient), HTTP_IDEMPOTENCY_KEY="order-2")

    assert first.status_code == second.status_code == 201
    assert first.json()["reference"] != second.json()["reference"]
    assert Donation.objects.count() == 2
    assert len([c for c in azam.calls if c.request.url == MNO_URL]) == 2


# --- status and refresh -----------------------------------------------------------------------------------


def test_status_endpoint_reads_the_donation_from_the_database(api_client, patient, mno_checkout):
    created = create(api_client, donation_request(patient)).json()
    reference = created["reference"]
    response = api_client.get(f"{DONATIONS_URL}{created['public_token']}/status/")

    assert response.status_code == 200
    body = response.json()
    assert {"reference", "status", "transactionId", "receipt", "amount", "currency", "patient", "updated_at"} <= set(
        body
    )
    assert body["reference"] == reference
    assert body["status"] == "pending"
    assert body["transactionId"] == TRANSACTION_ID
    assert body["receipt"] == ""
    assert Decimal(body["amount"]) == Decimal("5000")
    assert (body["currency"], body["patient"]) == ("TZS", "PAT-0042")


def test_status_of_an_unknown_reference_is_a_json_404(api_client):
    response = api_client.get(f"{DONATIONS_URL}RHCI-DN-0-20000101000000/status/")
    assert response.status_code == 404
    assert ERROR_KEYS <= set(response.json())


def test_refresh_asks_the_provider_and_answers_completed(api_client, patient, azam, mno_checkout):
    status = azam.get(STATUS_URL, json=fixture("status_success.json"))
    token = create(api_client, donation_request(patient)).json()["public_token"]
    response = api_client.post(f"{DONATIONS_URL}{token}/refresh/")

    assert response.status_code == 200
    assert response.json()["status"] == "completed"
    assert status.call_count == 1
    assert status.calls[0].request.params == {"pgReferenceId": TRANSACTION_ID, "bankName": "Mpesa"}
    patient.refresh_from_db()
    assert patient.funding_received == Decimal("5000")


def test_refresh_of_a_finished_donation_does_not_ask_the_provider_again(api_client, patient, azam, mno_checkout):
    status = azam.get(STATUS_URL, json=fixture("status_success.json"))
    token = create(api_client, donation_request(patient)).json()["public_token"]
    api_client.post(f"{DONATIONS_URL}{token}/refresh/")
    response = api_client.post(f"{DONATIONS_URL}{token}/refresh/")

    assert response.json()["status"] == "completed"
    assert status.call_count == 1
    patient.refresh_from_db()
    assert patient.funding_received == Decimal("5000")


# --- my donations -----------------------------------------------------------------------------------------


def test_my_donations_needs_a_token(api_client):
    response = api_client.get(MY_DONATIONS_URL)
    assert response.status_code == 401
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert (body["error"], body["code"]) == ("Unauthorized", "AUTH_REQUIRED")


def test_my_donations_rejects_a_forged_token(api_client):
    api_client.credentials(HTTP_AUTHORIZATION="Bearer not.a.token")
    response = api_client.get(MY_DONATIONS_URL)
    assert response.status_code == 401
    assert response.json()["code"] == "AUTH_REQUIRED"


def test_my_donations_lists_only_the_callers_donations(auth_client, donor_user):
    mine = DonationFactory(donor=Donor.objects.get(user=donor_user))
    DonationFactory()  # someone else's
    DonationFactory(donor=None)
    response = auth_client.get(MY_DONATIONS_URL)

    assert response.status_code == 200
    assert [d["reference"] for d in response.json()["results"]] == [mine.reference]


# --- a phone the rail cannot reach ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "currency", "phone", "country"),
    [
        ("mtn", "UGX", "+254712345678", "UG"),  # a Kenyan number for MTN Uganda
        ("mpesa", "KES", "+255712345678", "KE"),  # a Tanzanian number for M-Pesa Kenya
        ("mpesa", "KES", "+254202012345", "KE"),  # a Kenyan landline: not an M-Pesa wallet
        ("airtel", "UGX", "+255712345678", "UG"),  # not of AIRTEL_COUNTRY
        ("azampay", "TZS", "+254712345678", "TZ"),  # AzamPay's wallets are Tanzanian
    ],
)
def test_a_phone_the_rail_cannot_reach_is_a_400_on_phone_number(
    api_client, settings, provider, currency, phone, country
):
    settings.PAYMENT_PROVIDERS = {
        **settings.PAYMENT_PROVIDERS,
        "mtn": {**settings.PAYMENT_PROVIDERS["mtn"], "currency": "UGX", "target_environment": "mtnuganda"},
        "airtel": {**settings.PAYMENT_PROVIDERS["airtel"], "country": "UG", "currency": "UGX"},
    }
    target = PatientFactory(currency=currency, funding_goal=Decimal("1000000"))
    body = donation_request(target, provider=provider, currency=currency, phone_number=phone)
    response = create(api_client, body)
    assert response.status_code == 400, response.json()
    answer = response.json()
    assert set(answer) == ERROR_KEYS | {"errors"} and answer["code"] == "VALIDATION_ERROR"
    assert list(answer["errors"]) == ["phone_number"]
    [message] = answer["errors"]["phone_number"]
    assert "cannot reach this number" in message and f"Enter a mobile number of {country}" in message
    assert answer["message"] == f"phone_number: {message}"
    assert not Donation.objects.exists() and not Payment.objects.exists()  # refused before anything was sent


def test_a_national_number_is_read_in_the_rails_country(settings):
    """Airtel in Kenya collecting KES: 0733… is a Kenyan number, whatever currency maps to which country."""
    from payments.services.donations import DonationRequest, donation_check

    settings.PAYMENT_PROVIDERS = {
        **settings.PAYMENT_PROVIDERS,
        "airtel": {**settings.PAYMENT_PROVIDERS["airtel"], "country": "KE", "currency": "KES"},
    }
    checked = donation_check(
        DonationRequest(amount=Decimal("100"), currency="KES", provider="airtel", phone_number="0733123456")
    )
    assert checked.msisdn == "254733123456"


def test_mtns_test_numbers_are_reached_in_any_market(settings):
    from payments.services.donations import DonationRequest, donation_check

    settings.PAYMENT_PROVIDERS = {
        **settings.PAYMENT_PROVIDERS,
        "mtn": {**settings.PAYMENT_PROVIDERS["mtn"], "currency": "UGX", "target_environment": "mtnuganda"},
    }
    request = DonationRequest(amount=Decimal("5000"), currency="UGX", provider="mtn", phone_number="46733123450")
    assert donation_check(request).msisdn == "46733123450"
