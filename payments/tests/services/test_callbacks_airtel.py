"""Airtel Money callbacks through the site's pipeline (inbox → authenticate the `hash` → parse → transaction enquiry
→ apply), without the sandbox: Airtel's far side is `responses`, the Django test client posts the callbacks.

Airtel calls the one URL set on its portal (no secret of ours can be in it); with AIRTEL_CALLBACK_SECRET set its
callbacks carry a `hash` (Base64 HMAC-SHA256 of the compact JSON of `transaction`), which must match, and even a
matching one only makes the callback a reason to ask: `GET /standard/v1/payments/{our id}` decides. The bodies are
Airtel's (payments/tests/fixtures/airtel) pointed at our payment.
"""

import json
from decimal import Decimal

import pytest
import responses
from django.core.cache import cache
from django.test import Client, TestCase

from donor.models import Allocation
from patients.models import Patient
from patients.tests.factories import PatientFactory, TreatmentPartnerFactory
from payments.models import CallbackEvent, Payment, Payout
from payments.providers.airtel.client import airtel_id
from payments.sandbox.airtel import callback_hash  # Airtel's side of the hash, written apart from the adapter's
from payments.tests.factories import PaymentFactory, staff_user
from payments.tests.helpers import credited
from payments.tests.providers.airtel.support import (
    AIRTEL_ID,
    API,
    DISBURSEMENT_ENQUIRY_URL,
    DISBURSEMENT_URL,
    ENQUIRY_URL,
    PAYOUT_ID,
    PAYOUT_REFERENCE,
    REFERENCE,
    SECRET,
    TOKEN_URL,
    fixture,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("airtel_settings")]

ACK = {"status": {"code": "200", "message": "Callback received successfully", "success": True}}
PAYMENT = "/webhooks/airtel/payment/"
MONEY_ID = "MP210603.1234.L06941"  # the callback's airtel_money_id
ENQUIRY_MONEY_ID = "C3648.00993.538XX.XX67"  # the enquiry's (fixtures/airtel/enquiry_success.json)
AMOUNT = Decimal("5000")


@pytest.fixture
def airtel_settings(settings):
    """Airtel pointed at its UAT host (mocked), Uganda, with callback authentication on (AIRTEL_CALLBACK_SECRET)."""
    cache.clear()
    settings.PAYMENT_PROVIDERS = {
        **settings.PAYMENT_PROVIDERS,
        "airtel": {
            **settings.PAYMENT_PROVIDERS["airtel"],
            "api_url": API,
            "client_id": "test-client-id",
            "client_secret": "test-client-secret",
            "country": "UG",
            "currency": "UGX",
            "callback_secret": SECRET,
        },
    }
    yield settings
    cache.clear()


@pytest.fixture
def airtel():
    """Airtel's far side with its token; tests add the enquiry answers they need. Anything else → error."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, json=fixture("token_success.json"))
        yield mock


@pytest.fixture
def payment():
    return PaymentFactory(
        reference=REFERENCE,
        external_id=AIRTEL_ID,  # our reference in Airtel's alphabet: the push's transaction.id
        provider="airtel",
        channel="",
        msisdn="256712345678",
        provider_reference=None,  # Airtel's airtel_money_id is learnt from the enquiry
        donation__reference=REFERENCE,
        donation__amount=AMOUNT,
        donation__currency="UGX",
        donation__patient__currency="UGX",
        donation__patient__funding_goal=Decimal("1000000"),
    )


def signed(name: str = "callback_success.json", *, secret: str | None = SECRET, **changes) -> dict:
    """An Airtel callback fixture about our payment (`changes` go into its transaction), with its hash."""
    body = fixture(name)
    transaction = body.get("transaction") or body["data"]["transaction"]
    transaction.update({"id": AIRTEL_ID, **changes})
    body.pop("hash", None)
    if secret is not None:
        body["hash"] = callback_hash(secret, transaction)
    return body


def deliver(path: str, body) -> tuple[int, dict]:
    """POST a callback through the real URL and run what it left for after its commit (the enquiry)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = Client().post(path, data=data, content_type="application/json")
    assert "Location" not in response
    return response.status_code, response.json()


def enquiry_says(airtel, name: str, *, url: str = ENQUIRY_URL, status: int = 200) -> None:
    airtel.get(url, json=fixture(name), status=status)


def enquiries(airtel, url: str = ENQUIRY_URL) -> int:
    return len([c for c in airtel.calls if c.request.method == "GET" and c.request.url == url])


# --- the enquiry decides -----------------------------------------------------------------------------------------


def test_a_signed_success_is_credited_once_the_enquiry_confirms_it(airtel, payment):
    enquiry_says(airtel, "enquiry_success.json")
    assert deliver(PAYMENT, signed()) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.receipt == payment.provider_reference == ENQUIRY_MONEY_ID  # Airtel's word, not the callback's
    assert credited(payment) == AMOUNT
    assert enquiries(airtel) == 1
    event = CallbackEvent.objects.get()
    assert (event.kind, event.trust, event.status) == ("payment", "unverified", CallbackEvent.Status.PROCESSED)
    assert "hash" not in json.loads(event.body)  # keyed with our secret: redacted before it is stored
    assert event.our_reference == AIRTEL_ID and event.payment == payment


@pytest.mark.parametrize(
    ("answer", "status", "event_status"),
    [
        ("enquiry_in_progress.json", 200, CallbackEvent.Status.REVIEW),
        ("enquiry_ambiguous.json", 200, CallbackEvent.Status.REVIEW),
        ("enquiry_tu.json", 200, CallbackEvent.Status.REVIEW),
        ("enquiry_not_found.json", 200, CallbackEvent.Status.REVIEW),
        ("enquiry_not_found.json", 404, CallbackEvent.Status.REVIEW),
        ("enquiry_success.json", 500, CallbackEvent.Status.FAILED),  # Airtel down: the sweeper asks again
    ],
)
def test_a_signed_success_never_credits_on_its_word(airtel, payment, answer, status, event_status):
    enquiry_says(airtel, answer, status=status)
    assert deliver(PAYMENT, signed()) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert Allocation.objects.count() == 0
    assert CallbackEvent.objects.get().status == event_status


def test_a_failure_callback_is_overruled_by_a_successful_enquiry(airtel, payment):
    enquiry_says(airtel, "enquiry_success.json")
    assert deliver(PAYMENT, signed("callback_failure.json")) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert credited(payment) == AMOUNT


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        ("enquiry_failed_insufficient.json", Payment.Status.FAILED),
        ("enquiry_failed_pin_not_entered.json", Payment.Status.EXPIRED),
    ],
)
def test_a_success_callback_is_overruled_by_a_failed_enquiry(airtel, payment, answer, status):
    enquiry_says(airtel, answer)
    assert deliver(PAYMENT, signed()) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == status and "TF" in payment.failure_reason
    assert Allocation.objects.count() == 0


def test_the_legacy_shape_is_confirmed_the_same_way(airtel, payment):
    enquiry_says(airtel, "enquiry_success.json")
    assert deliver(PAYMENT, signed("callback_legacy_shape.json")) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert credited(payment) == AMOUNT


def test_without_a_secret_configured_an_unsigned_callback_is_still_only_a_reason_to_ask(airtel, payment, settings):
    settings.PAYMENT_PROVIDERS["airtel"]["callback_secret"] = ""
    enquiry_says(airtel, "enquiry_in_progress.json")
    assert deliver(PAYMENT, signed(secret=None)) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    event = CallbackEvent.objects.get()
    assert (event.trust, event.status) == ("unverified", CallbackEvent.Status.REVIEW)


# --- the hash ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        signed(secret="not-our-secret"),
        signed(secret=None),
        signed() | {"hash": ""},
        # A good hash over another transaction, pasted onto ours.
        signed() | {"hash": callback_hash(SECRET, {"id": "SOMEONEELSE1", "status_code": "TS"})},
        # Our transaction's hash, with the state changed afterwards.
        {
            **signed("callback_failure.json"),
            "transaction": {**signed("callback_failure.json")["transaction"], "status_code": "TS"},
        },
    ],
    ids=["wrong-secret", "no-hash", "empty-hash", "another-transactions-hash", "tampered-after-signing"],
)
def test_a_callback_without_our_hash_is_401_and_nothing_is_asked(airtel, payment, body):
    status, answer = deliver(PAYMENT, body)
    assert (status, answer["code"]) == (401, "AUTH_REQUIRED")
    event = CallbackEvent.objects.get()
    assert (event.status, event.trust) == (CallbackEvent.Status.REJECTED, "rejected")
    assert len(airtel.calls) == 0
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert Allocation.objects.count() == 0


def test_a_hash_survives_re_encoding_of_the_body(airtel, payment):
    """The hash is over the `transaction` object, not the bytes: whitespace a proxy adds does not break it."""
    enquiry_says(airtel, "enquiry_success.json")
    assert deliver(PAYMENT, json.dumps(signed(), indent=3).encode()) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED


# --- malformed, unknown, duplicate ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        signed("callback_malformed_no_id.json", id=""),
        signed("callback_malformed_no_status.json"),
        signed(status_code={"state": "TS"}),
        b"not json",
        b"[]",
    ],
    ids=["no-id", "no-status", "status-not-text", "not-json", "array"],
)
def test_malformed_bodies_are_400_and_kept(airtel, payment, body):
    status, answer = deliver(PAYMENT, body)
    assert (status, answer["code"]) == (400, "INVALID_FORMAT")
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REJECTED and "malformed" in event.error
    assert event.body  # kept as evidence
    assert len(airtel.calls) == 0
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING


@pytest.mark.parametrize(
    "name",
    ["callback_malformed_no_id.json", "callback_malformed_no_status.json", "callback_malformed_no_transaction.json"],
)
def test_malformed_bodies_without_a_secret_configured_are_400(airtel, payment, settings, name):
    settings.PAYMENT_PROVIDERS["airtel"]["callback_secret"] = ""
    status, answer = deliver(PAYMENT, fixture(name))
    assert (status, answer["code"]) == (400, "INVALID_FORMAT")
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REJECTED


def test_a_callback_for_a_transaction_we_never_started_is_404(airtel, payment):
    status, answer = deliver(PAYMENT, signed(id="RHCIDN99920251219120000"))
    assert (status, answer["code"]) == (404, "NOT_FOUND")
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REJECTED
    assert len(airtel.calls) == 0


def test_the_same_callback_twice_is_credited_once(airtel, payment):
    enquiry_says(airtel, "enquiry_success.json")
    body = json.dumps(signed()).encode()
    assert deliver(PAYMENT, body) == (200, ACK)
    assert deliver(PAYMENT, body) == (200, ACK)
    assert credited(payment) == AMOUNT
    assert Allocation.objects.count() == 1
    statuses = list(CallbackEvent.objects.order_by("pk").values_list("status", flat=True))
    assert statuses == [CallbackEvent.Status.PROCESSED, CallbackEvent.Status.DUPLICATE]
    assert enquiries(airtel) == 1


def test_differently_encoded_copies_are_credited_once(airtel, payment):
    enquiry_says(airtel, "enquiry_success.json")
    for indent in (None, 1, 2):
        assert deliver(PAYMENT, json.dumps(signed(), indent=indent).encode()) == (200, ACK)
    assert credited(payment) == AMOUNT
    assert Allocation.objects.count() == 1
    statuses = list(CallbackEvent.objects.order_by("pk").values_list("status", flat=True))
    assert statuses == [CallbackEvent.Status.PROCESSED, CallbackEvent.Status.IGNORED, CallbackEvent.Status.IGNORED]


# --- the other kinds: notifications, disbursement results ----------------------------------------------------------


def test_a_notification_is_stored_and_acknowledged(airtel, payment):
    body = signed()  # Airtel documents no notification shape: whatever it sends is kept
    assert deliver("/webhooks/airtel/notification/", body) == (200, ACK)
    event = CallbackEvent.objects.get()
    assert (event.kind, event.status) == ("notification", CallbackEvent.Status.PROCESSED)
    assert "notice" in event.error
    assert "hash" not in json.loads(event.body)
    assert len(airtel.calls) == 0 and Allocation.objects.count() == 0
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING  # a notice never moves a payment


def test_a_notification_with_a_wrong_hash_is_401(airtel, payment):
    status, answer = deliver("/webhooks/airtel/notification/", signed(secret="not-our-secret"))
    assert status == 401, answer  # today: 200 with Airtel's ack, the row settled as processed
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REJECTED


def airtel_payout(*, status: str, conversation_id: str | None) -> Payout:
    partner = TreatmentPartnerFactory(payout_provider="airtel", payout_msisdn="256700160185")
    patient = PatientFactory(
        currency="UGX",
        funding_goal=Decimal("1000"),
        funding_received=Decimal("1000"),
        status=Patient.Status.FULLY_FUNDED,
        treatment_partner=partner,
    )
    return Payout.objects.create(
        reference=PAYOUT_REFERENCE,
        patient=patient,
        treatment_partner=partner,
        provider="airtel",
        msisdn=partner.payout_msisdn,
        amount=Decimal("1000"),
        currency="UGX",
        status=status,
        needs_review=status == Payout.Status.AMBIGUOUS,
        requested_by=staff_user("maker"),
        approved_by=staff_user("checker"),
        provider_reference=conversation_id,
    )


@pytest.fixture
def sent_payout():
    """Accepted by Airtel as processing (DP00900001006): its transaction id is the payout's conversation id."""
    return airtel_payout(status=Payout.Status.SENT, conversation_id=PAYOUT_ID)


@pytest.fixture
def ambiguous_payout():
    """Airtel answered DP00900001000 (or timed out): only the id chosen before sending (our reference in
    Airtel's alphabet, stored by the payout service before the request) is known."""
    return airtel_payout(status=Payout.Status.AMBIGUOUS, conversation_id=PAYOUT_ID)


def disbursement_result(name: str) -> dict:
    body = fixture(name)
    body["data"]["transaction"]["id"] = PAYOUT_ID
    body["hash"] = callback_hash(SECRET, body["data"]["transaction"])
    return body


def test_a_disbursement_result_is_applied_once_the_disbursement_enquiry_confirms_it(airtel, sent_payout):
    enquiry_says(airtel, "disbursement_enquiry_success.json", url=DISBURSEMENT_ENQUIRY_URL)
    assert deliver("/webhooks/airtel/disbursement/", disbursement_result("callback_disbursement_success.json")) == (
        200,
        ACK,
    )
    sent_payout.refresh_from_db()
    assert sent_payout.status == Payout.Status.PAID and not sent_payout.needs_review
    assert sent_payout.receipt == "partner-ABCD07026984141"
    sent_payout.patient.refresh_from_db()
    assert sent_payout.patient.status == Patient.Status.IN_TREATMENT
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.PROCESSED


@pytest.mark.parametrize("answer", ["disbursement_enquiry_in_progress.json", "disbursement_enquiry_failed.json"])
def test_a_disbursement_result_the_enquiry_does_not_confirm_is_held_for_review(airtel, sent_payout, answer):
    enquiry_says(airtel, answer, url=DISBURSEMENT_ENQUIRY_URL)
    assert deliver("/webhooks/airtel/disbursement/", disbursement_result("callback_disbursement_success.json")) == (
        200,
        ACK,
    )
    sent_payout.refresh_from_db()
    assert sent_payout.status == Payout.Status.SENT
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REVIEW


def test_an_unsigned_disbursement_result_is_401(airtel, sent_payout):
    status, answer = deliver("/webhooks/airtel/disbursement/", fixture("callback_disbursement_success.json"))
    assert (status, answer["code"]) == (401, "AUTH_REQUIRED")
    sent_payout.refresh_from_db()
    assert sent_payout.status == Payout.Status.SENT
    assert len(airtel.calls) == 0


def test_a_disbursement_result_settles_an_ambiguous_payout(airtel, ambiguous_payout):
    enquiry_says(airtel, "disbursement_enquiry_success.json", url=DISBURSEMENT_ENQUIRY_URL)
    body = disbursement_result("callback_disbursement_success.json")
    assert deliver("/webhooks/airtel/disbursement/", body) == (200, ACK)
    ambiguous_payout.refresh_from_db()
    assert ambiguous_payout.status == Payout.Status.PAID
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.PROCESSED


def test_a_payout_whose_send_timed_out_keeps_the_id_airtel_knows_it_by(airtel, settings):
    """The id is stored before the request, so the result callback and the enquiry find an ambiguous payout."""
    import requests

    from payments.services.payouts import payout_approve, payout_request
    from payments.tests.providers.airtel.support import public_pem

    airtel_config = settings.PAYMENT_PROVIDERS["airtel"]
    settings.PAYMENT_PROVIDERS = {
        **settings.PAYMENT_PROVIDERS,
        "airtel": {**airtel_config, "disbursement_pin": "1234", "public_key_pem": public_pem()},
    }
    payout = airtel_payout(status=Payout.Status.REQUESTED, conversation_id=None)
    Payout.objects.filter(pk=payout.pk).delete()
    maker = staff_user("po-maker", "payments.add_payout", "payments.view_payout")
    checker = staff_user("po-checker", "payments.approve_payout", "payments.view_payout")
    requested = payout_request(patient=payout.patient, amount=Decimal("1000"), requested_by=maker)
    airtel.post(DISBURSEMENT_URL, body=requests.exceptions.ReadTimeout("read timed out"))
    sent = payout_approve(payout_id=requested.pk, approved_by=checker)
    assert sent.status == Payout.Status.AMBIGUOUS
    assert sent.provider_reference == airtel_id(sent.reference)
