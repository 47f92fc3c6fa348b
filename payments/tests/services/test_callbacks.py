"""The AzamPay callback, end to end through the real URL: record → authenticate → parse → apply or verify."""

import json
from decimal import Decimal

import pytest
from django.core import mail
from django.db import OperationalError

from donor.models import Allocation, Donation
from patients.tests.factories import PatientFactory
from payments.models import CallbackEvent, Payment
from payments.services.dispatch import callback_replay
from payments.tests.azampay_fakes import (
    ACK,
    CALLBACK_URL,
    PASSWORD,
    POST_CHECKOUT_URL,
    STATUS_URL,
    callback_body,
    fixture,
)
from payments.tests.factories import PaymentFactory
from payments.tests.helpers import credited

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("azampay_settings")]

DONATIONS_URL = "/api/v1.0/donors/donations/"
ERROR_KEYS = {"error", "message", "code"}


def post(client, body: bytes, path: str = CALLBACK_URL):
    return client.post(path, data=body, content_type="application/json")


@pytest.fixture
def no_callback_password(settings):
    settings.PAYMENT_PROVIDERS = {
        **settings.PAYMENT_PROVIDERS,
        "azampay": {**settings.PAYMENT_PROVIDERS["azampay"], "callback_password": ""},
    }


@pytest.fixture
def payment() -> Payment:
    return PaymentFactory(
        donation__amount=Decimal("5000"),
        donation__patient__funding_goal=Decimal("1000000"),
        donation__donor__email="donor@example.org",
    )


# --- the happy path -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [CALLBACK_URL, CALLBACK_URL.rstrip("/")], ids=["slash", "no-slash"])
def test_verified_success_callback_credits_the_patient_once(client, payment, path, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, callback_body(payment), path)

    assert response.status_code == 200  # never a redirect, with or without the slash
    assert response.json() == ACK
    payment.refresh_from_db()
    donation = Donation.objects.get(pk=payment.donation_id)
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.receipt == "a068932f-09a8-4ff4-82c0-6efa13def8d5"  # the operator's reference
    assert donation.status == Donation.Status.COMPLETED
    assert credited(payment) == Decimal("5000")
    assert Allocation.objects.filter(donation=donation).count() == 1
    event = CallbackEvent.objects.get()
    assert (event.status, event.trust, event.payment_id) == ("processed", "trusted", payment.pk)
    assert len(mail.outbox) == 1
    assert donation.reference in mail.outbox[0].subject
    assert "a068932f-09a8-4ff4-82c0-6efa13def8d5" in mail.outbox[0].body


def test_duplicate_delivery_is_acknowledged_and_credits_nothing_more(client, payment):
    body = callback_body(payment)
    first = post(client, body)
    second = post(client, body)

    assert first.status_code == second.status_code == 200
    assert second.json() == ACK
    original, repeat = CallbackEvent.objects.order_by("pk")
    assert original.status == CallbackEvent.Status.PROCESSED
    assert repeat.status == CallbackEvent.Status.DUPLICATE
    assert repeat.duplicate_of_id == original.pk
    assert credited(payment) == Decimal("5000")
    assert Allocation.objects.filter(donation=payment.donation).count() == 1


def test_redelivery_with_different_bytes_is_ignored_and_credits_once(client, payment):
    post(client, callback_body(payment))
    again = json.dumps(json.loads(callback_body(payment)), indent=2).encode()  # same callback, other bytes
    response = post(client, again)

    assert response.status_code == 200 and response.json() == ACK
    assert CallbackEvent.objects.order_by("pk").last().status == CallbackEvent.Status.IGNORED
    assert credited(payment) == Decimal("5000")
    assert Allocation.objects.filter(donation=payment.donation).count() == 1


def test_failure_callback_fails_the_donation_with_its_reason_when_the_provider_has_no_final_word(
    client, payment, azam, django_capture_on_commit_callbacks
):
    status = azam.get(STATUS_URL, json={"data": "Transaction pending.", "success": True, "statusCode": 200})
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, callback_body(payment, status="failure"))

    assert response.status_code == 200 and response.json() == ACK
    assert status.call_count == 1  # a failure is re-checked before the donation is given up
    payment.refresh_from_db()
    donation = Donation.objects.get(pk=payment.donation_id)
    assert payment.status == Payment.Status.FAILED
    assert donation.status == Donation.Status.FAILED
    assert donation.status_reason == "Insufficient balance"
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.PROCESSED
    assert credited(payment) == 0
    assert not Allocation.objects.exists()


def test_failure_callback_the_provider_contradicts_with_a_success_credits_the_donation(
    client, payment, azam, django_capture_on_commit_callbacks
):
    azam.get(STATUS_URL, json=fixture("status_success.json"))
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, callback_body(payment, status="failure"))  # out of order: the money moved

    assert response.status_code == 200
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert Donation.objects.get(pk=payment.donation_id).status == Donation.Status.COMPLETED
    assert credited(payment) == Decimal("5000")


@pytest.mark.parametrize("provider_says", ["Transaction pending.", "Transaction failed."])
def test_failure_after_success_is_ignored_as_a_conflict_and_nothing_is_uncredited(
    client, payment, azam, django_capture_on_commit_callbacks, provider_says
):
    azam.get(STATUS_URL, json={"data": provider_says, "success": True, "statusCode": 200})
    post(client, callback_body(payment))
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, callback_body(payment, status="failure"))

    assert response.status_code == 200
    conflict = CallbackEvent.objects.order_by("pk").last()
    assert conflict.status == CallbackEvent.Status.IGNORED
    assert "already succeeded" in conflict.error
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert Donation.objects.get(pk=payment.donation_id).status == Donation.Status.COMPLETED
    assert credited(payment) == Decimal("5000")
    assert Allocation.objects.filter(donation=payment.donation).count() == 1


def test_verified_success_after_failed_is_applied_and_flagged_for_review(client):
    payment = PaymentFactory(status=Payment.Status.FAILED, donation__status=Donation.Status.FAILED)
    response = post(client, callback_body(payment))

    assert response.status_code == 200
    payment.refresh_from_db()
    donation = Donation.objects.get(pk=payment.donation_id)
    assert payment.status == Payment.Status.SUCCEEDED and payment.needs_review
    assert donation.status == Donation.Status.COMPLETED and donation.needs_review
    assert credited(payment) == payment.amount


def start_card_donation(api_client, azam) -> tuple[Payment, str]:
    """A card donation through the API; returns its payment and the externalId AzamPay was given."""
    page = azam.post(POST_CHECKOUT_URL, body=fixture("post_checkout_url.json"), content_type="text/plain")
    patient = PatientFactory(currency="TZS", funding_goal=Decimal("1000000"))
    request = {"patient": patient.code, "amount": "5000", "currency": "TZS", "provider": "azampay", "channel": "card"}
    response = api_client.post(DONATIONS_URL, request, format="json")
    assert response.status_code == 201, response.json()
    external_id = json.loads(page.calls[0].request.body)["externalId"]
    return Payment.objects.get(reference=response.json()["reference"]), external_id


def card_callback(payment: Payment, external_id: str) -> bytes:
    azampay_id = "d" * 32  # the hosted page gives no id up front: the callback brings AzamPay's
    return callback_body(
        payment, utilityref=external_id, reference=azampay_id, externalreference=azampay_id, transid=azampay_id
    )


def test_card_payment_callback_is_matched_by_the_external_id_we_sent(client, api_client, azam):
    payment, external_id = start_card_donation(api_client, azam)
    assert payment.provider_reference is None
    response = post(client, card_callback(payment, external_id))

    assert response.status_code == 200 and response.json() == ACK
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.provider_reference == "d" * 32
    assert credited(payment) == Decimal("5000")


def test_card_payment_with_a_reference_over_30_characters_is_still_matched(client, api_client, azam, settings):
    settings.DONATION_REFERENCE_PREFIX = "KIDS-HEART-FUND"
    payment, external_id = start_card_donation(api_client, azam)
    assert len(payment.reference) > 30
    response = post(client, card_callback(payment, external_id))

    assert response.status_code == 200
    assert credited(payment) == Decimal("5000")


# --- forged, tampered, unknown, malformed ---------------------------------------------------------------


@pytest.mark.parametrize("password", [None, "", "guessed-password"], ids=["no-password", "empty", "wrong"])
def test_forged_callback_is_a_401_stored_as_rejected(client, payment, password):
    response = post(client, callback_body(payment, password=password))

    assert response.status_code == 401
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["error"] == "Unauthorized" and body["code"] == "AUTH_REQUIRED"
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REJECTED
    assert event.trust == "rejected"
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert credited(payment) == 0


def test_tampered_amount_with_the_right_password_goes_to_review_and_credits_nothing(client, payment):
    response = post(client, callback_body(payment, amount="50"))

    assert response.status_code == 200 and response.json() == ACK
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REVIEW
    assert "amount" in event.error
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert credited(payment) == 0
    assert not Allocation.objects.exists()


def test_callback_for_an_unknown_reference_is_a_404(client, payment):
    unknown = {"reference": "TEST123", "externalreference": "TEST123", "transid": "TEST123"}
    response = post(client, callback_body(payment, utilityref="RHCI-DN-999-20251219120000", **unknown))

    assert response.status_code == 404
    assert set(response.json()) == ERROR_KEYS and response.json()["code"] == "NOT_FOUND"
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REJECTED


def test_seed_001_callback_with_our_id_in_externalreference_finds_the_payment(client, payment):
    data = fixture("callback_externalreference_variant.json") | {
        "password": PASSWORD,
        "externalreference": payment.reference,
        "reference": payment.provider_reference,
        "transid": payment.provider_reference,
        "amount": "5000",
    }
    response = post(client, json.dumps(data).encode())
    assert response.status_code == 200
    assert credited(payment) == Decimal("5000")


def test_malformed_body_is_a_400_and_kept_as_rejected(client, payment):
    raw = b'{"transactionstatus": "success", "utilityref": '
    response = post(client, raw)

    assert response.status_code == 400
    assert set(response.json()) == ERROR_KEYS and response.json()["code"] == "INVALID_FORMAT"
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REJECTED
    assert event.body == raw.decode()
    assert "malformed" in event.error


def test_body_over_the_size_limit_is_a_413(client, payment, settings):
    padding = "x" * (settings.CALLBACK_MAX_BODY_BYTES + 1)
    response = post(client, callback_body(payment, padding=padding))

    assert response.status_code == 413
    assert set(response.json()) == ERROR_KEYS
    assert not CallbackEvent.objects.exists()
    assert credited(payment) == 0


def test_get_on_the_callback_url_is_a_json_405(client):
    response = client.get(CALLBACK_URL)
    assert response.status_code == 405
    assert set(response.json()) == ERROR_KEYS


def test_callback_password_never_reaches_the_stored_event(client, payment):
    post(client, callback_body(payment))
    post(client, callback_body(payment, status="failure"))
    post(client, callback_body(payment, amount="1"))
    other = PaymentFactory()
    post(client, callback_body(other, password=PASSWORD.upper()))  # rejected: the near-miss is not kept either

    events = list(CallbackEvent.objects.all())
    assert len(events) == 4
    for event in events:
        assert PASSWORD not in event.body
        assert PASSWORD.upper() not in event.body
        assert PASSWORD not in json.dumps(event.headers)
        if event.body_kept:  # the rejected near-miss keeps no body at all (a fixed-size record)
            assert json.loads(event.body)["password"] == "***"
    assert [event.body_kept for event in events].count(False) == 1


# --- no callback password configured: believe the status query, not the body ----------------------------


def test_unverified_success_is_not_credited_while_the_provider_says_pending(
    client, payment, no_callback_password, azam, django_capture_on_commit_callbacks
):
    status = azam.get(STATUS_URL, json={"data": "Transaction pending.", "success": True, "statusCode": 200})
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, callback_body(payment, password=None))

    assert response.status_code == 200 and response.json() == ACK
    assert status.call_count == 1
    event = CallbackEvent.objects.get()
    assert event.trust == "unverified"
    assert event.status == CallbackEvent.Status.REVIEW
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert credited(payment) == 0


def test_unverified_success_is_credited_once_the_provider_confirms_it(
    client, payment, no_callback_password, azam, django_capture_on_commit_callbacks
):
    status = azam.get(STATUS_URL, json=fixture("status_success.json"))
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, callback_body(payment, password=None, amount="1"))  # the body's amount is not used

    assert response.status_code == 200
    assert status.call_count == 1
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.PROCESSED
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert credited(payment) == Decimal("5000")


def test_unverified_success_waits_for_the_sweeper_when_the_provider_is_unreachable(
    client, payment, no_callback_password, azam, django_capture_on_commit_callbacks
):
    azam.get(STATUS_URL, status=503)
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, callback_body(payment, password=None))

    assert response.status_code == 200
    event = CallbackEvent.objects.get()
    # Not review (nobody doubts it yet) and not lost: failed, with its next attempt scheduled.
    assert event.status == CallbackEvent.Status.FAILED
    assert event.next_attempt_at is not None and event.attempts == 1
    assert credited(payment) == 0


# --- storage failures and replay ------------------------------------------------------------------------


def test_database_unavailable_when_recording_is_a_503(client, payment, monkeypatch):
    def database_down(**kwargs):
        raise OperationalError("(2006, 'MySQL server has gone away')")

    monkeypatch.setattr(CallbackEvent.objects, "create", database_down)
    response = post(client, callback_body(payment))

    assert response.status_code == 503
    assert set(response.json()) == ERROR_KEYS
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING


def test_failed_event_is_kept_and_replays_with_a_dry_run_that_changes_nothing(client, payment, monkeypatch):
    def crash(**kwargs):
        raise RuntimeError("deadlock while applying")

    with monkeypatch.context() as patch:
        patch.setattr("payments.services.callbacks.payment_apply_result", crash)
        response = post(client, callback_body(payment))
    assert response.status_code == 200  # stored: the provider need not send it again
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.FAILED
    assert "deadlock while applying" in event.error

    preview = callback_replay(event=event, dry_run=True)
    assert preview.code == "accepted"
    event.refresh_from_db()
    payment.refresh_from_db()
    assert (event.status, event.attempts) == (CallbackEvent.Status.FAILED, 1)
    assert payment.status == Payment.Status.PENDING
    assert credited(payment) == 0
    assert not Allocation.objects.exists()

    outcome = callback_replay(event=event)
    assert outcome.code == "accepted"
    event.refresh_from_db()
    payment.refresh_from_db()
    assert event.status == CallbackEvent.Status.PROCESSED
    assert payment.status == Payment.Status.SUCCEEDED
    assert credited(payment) == Decimal("5000")

    callback_replay(event=event)
    assert credited(payment) == Decimal("5000")
    assert Allocation.objects.filter(donation=payment.donation).count() == 1
