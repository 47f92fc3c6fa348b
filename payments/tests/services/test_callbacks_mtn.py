"""MTN MoMo callbacks through the site's pipeline (inbox → authenticate → parse → status GET → apply), without the
sandbox: MTN's far side is `responses`, the Django test client delivers the callbacks (by PUT, as MTN does, or
POST).

MTN signs nothing: a callback is only ever a reason to ask `GET /collection/v1_0/requesttopay/{X-Reference-Id}`,
and its secret URL (the payment's token in X-Callback-Url) is what tells us which payment it is about. The bodies
are MTN's (payments/tests/fixtures/mtn), EUR as in MTN's sandbox.
"""

import json
from decimal import Decimal

import pytest
import responses
from django.core.cache import cache
from django.test import Client, TestCase

from donor.models import Allocation, Donation
from donor.services import donation_complete, donation_create, donor_for_guest
from patients.models import Patient
from patients.tests.factories import PatientFactory, TreatmentPartnerFactory
from payments.models import CallbackEvent, Payment, Payout, Refund
from payments.tests.factories import PaymentFactory, staff_user, token_for
from payments.tests.helpers import credited
from payments.tests.providers.mtn.support import (
    COLLECTION_TOKEN_URL,
    DISBURSEMENT_TOKEN_URL,
    KWARGS,
    PAYOUT_REFERENCE,
    PAYOUT_REFERENCE_ID,
    REFERENCE,
    REFUND_REFERENCE,
    REFUND_REFERENCE_ID,
    REFUND_URL,
    RTP_URL,
    SITE_URL,
    TRANSFER_URL,
    X_REFERENCE_ID,
    fixture,
    raw_fixture,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("mtn_settings")]

ACK = {"status": "accepted", "message": "Callback received"}
COLLECTION = "/webhooks/mtn/collection/"
STATUS_URL = f"{RTP_URL}/{X_REFERENCE_ID}"
TRANSFER_STATUS_URL = f"{TRANSFER_URL}/{PAYOUT_REFERENCE_ID}"
REFUND_STATUS_URL = f"{REFUND_URL}/{REFUND_REFERENCE_ID}"
AMOUNT = Decimal("50000")  # the fixtures' amount (EUR, MTN's sandbox currency)


@pytest.fixture
def mtn_settings(settings):
    """MTN pointed at https://momo.test (mocked) with test credentials, in MTN's sandbox environment (EUR)."""
    cache.clear()  # tokens and rate-limit counters
    settings.PAYMENT_PROVIDERS = {**settings.PAYMENT_PROVIDERS, "mtn": {**settings.PAYMENT_PROVIDERS["mtn"], **KWARGS}}
    settings.SITE_URL = SITE_URL
    yield settings
    cache.clear()


@pytest.fixture
def momo():
    """MTN's far side: both products' tokens; tests add the status answers they need. Anything else → error."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(COLLECTION_TOKEN_URL, json=fixture("token_success.json"))
        mock.post(DISBURSEMENT_TOKEN_URL, json=fixture("token_success.json"))
        yield mock


@pytest.fixture
def payment():
    return PaymentFactory(
        reference=REFERENCE,
        provider="mtn",
        channel="",
        msisdn="46733123454",
        provider_reference=X_REFERENCE_ID,  # our X-Reference-Id, stored before the request to pay
        donation__reference=REFERENCE,
        donation__amount=AMOUNT,
        donation__currency="EUR",
        donation__patient__currency="EUR",
        donation__patient__funding_goal=Decimal("1000000"),
    )


def deliver(path: str, body, *, method: str = "put") -> tuple[int, dict]:
    """Deliver a callback through the real URL and run what it left for after its commit (the status GET)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = getattr(Client(), method)(path, data=data, content_type="application/json")
    assert "Location" not in response
    return response.status_code, response.json()


def status_says(momo, name: str, *, status: int = 200, url: str = STATUS_URL) -> None:
    momo.get(url, json=fixture(name), status=status)


def gets(momo, url: str = STATUS_URL) -> int:
    return len([c for c in momo.calls if c.request.method == "GET" and c.request.url == url])


def success_body() -> dict:
    return fixture("callback_collection_with_reference_id.json") | {"referenceId": X_REFERENCE_ID}


# --- the status GET decides --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["put", "post"])
def test_success_on_the_secret_url_is_credited_once_the_status_get_confirms(momo, payment, method):
    status_says(momo, "status_successful.json")
    body = fixture("callback_collection_with_reference_id.json")
    assert deliver(f"{COLLECTION}{token_for(payment)}/", body, method=method) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED and payment.receipt == "1574559373"
    assert credited(payment) == AMOUNT
    assert gets(momo) == 1
    event = CallbackEvent.objects.get()
    assert (event.kind, event.trust, event.status) == ("collection", "unverified", CallbackEvent.Status.PROCESSED)
    assert event.payment == payment


@pytest.mark.parametrize("path", ["secret", COLLECTION, "/webhooks/mtn/collection"])
@pytest.mark.parametrize(
    ("answer", "status", "event_status"),
    [
        ("status_pending.json", 200, CallbackEvent.Status.REVIEW),
        ("status_created.json", 200, CallbackEvent.Status.REVIEW),
        ("status_not_found_404.json", 404, CallbackEvent.Status.REVIEW),  # "not visible yet": pending
        ("error_internal_processing_500.json", 500, CallbackEvent.Status.FAILED),  # MTN down: retried later
    ],
)
def test_a_success_callback_never_credits_on_its_word(momo, payment, path, answer, status, event_status):
    status_says(momo, answer, status=status)
    url = f"{COLLECTION}{token_for(payment)}/" if path == "secret" else path
    assert deliver(url, success_body()) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert Allocation.objects.count() == 0
    assert CallbackEvent.objects.get().status == event_status
    assert gets(momo) == 1


def test_a_failure_callback_is_overruled_by_a_successful_status_get(momo, payment):
    status_says(momo, "status_successful.json")
    body = fixture("callback_collection_failed_not_enough_funds.json")
    assert deliver(f"{COLLECTION}{token_for(payment)}/", body) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert credited(payment) == AMOUNT


@pytest.mark.parametrize(
    ("answer", "status", "reason"),
    [
        ("status_failed_not_enough_funds.json", Payment.Status.FAILED, "NOT_ENOUGH_FUNDS"),
        ("status_failed_approval_rejected.json", Payment.Status.CANCELLED, "APPROVAL_REJECTED"),
        ("status_failed_expired.json", Payment.Status.EXPIRED, "EXPIRED"),
    ],
)
def test_a_success_callback_is_overruled_by_a_failed_status_get(momo, payment, answer, status, reason):
    status_says(momo, answer)
    assert deliver(f"{COLLECTION}{token_for(payment)}/", success_body()) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == status and reason in payment.failure_reason
    assert payment.donation.status == status
    assert Allocation.objects.count() == 0


def test_a_status_get_naming_another_amount_is_held_for_review(momo, payment):
    momo.get(STATUS_URL, json=fixture("status_successful.json") | {"amount": "1"})
    assert deliver(f"{COLLECTION}{token_for(payment)}/", success_body()) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REVIEW and "amount" in event.error
    assert Allocation.objects.count() == 0


# --- which payment a callback is about ------------------------------------------------------------------------

NO_REFERENCE = {  # v1 callbacks carry no referenceId; this one lost its externalId too
    "financialTransactionId": "1574559373",
    "amount": "50000",
    "currency": "EUR",
    "payer": {"partyIdType": "MSISDN", "partyId": "46733123454"},
    "status": "SUCCESSFUL",
}


def test_a_callback_on_the_secret_url_attaches_to_its_payment_without_any_reference_in_the_body(momo, payment):
    status_says(momo, "status_successful.json")
    assert deliver(f"{COLLECTION}{token_for(payment)}/", NO_REFERENCE) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert credited(payment) == AMOUNT
    event = CallbackEvent.objects.get()
    assert event.payment == payment and event.status == CallbackEvent.Status.PROCESSED
    assert gets(momo) == 1  # asked about the payment's own X-Reference-Id


def test_the_same_body_on_the_bare_path_names_no_payment(momo, payment):
    status, body = deliver(COLLECTION, NO_REFERENCE)
    assert (status, body["code"]) == (404, "NOT_FOUND")
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REJECTED and event.payment is None
    assert gets(momo) == 0
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING


def test_a_secret_url_of_one_payment_with_the_body_of_another_is_held_for_review(momo, payment):
    other = PaymentFactory(
        provider="mtn",
        channel="",
        provider_reference="0b7e4c2a-9f1d-4e3b-8a6c-5d2f1e0a9b8c",
        donation__currency="EUR",
        donation__patient__currency="EUR",
    )
    body = success_body() | {"externalId": other.reference, "referenceId": other.provider_reference}
    assert deliver(f"{COLLECTION}{token_for(payment)}/", body) == (200, ACK)
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REVIEW and event.payment == payment
    assert Allocation.objects.count() == 0
    assert gets(momo) == 0


def test_a_secret_url_we_never_issued_is_401_and_nothing_is_asked(momo, payment):
    status, body = deliver(f"{COLLECTION}not-a-token-of-ours/", success_body())
    assert (status, body["code"]) == (401, "AUTH_REQUIRED")
    event = CallbackEvent.objects.get()
    assert (event.status, event.trust) == (CallbackEvent.Status.REJECTED, "rejected")
    assert len(momo.calls) == 0
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING


@pytest.mark.parametrize(
    "body",
    [
        raw_fixture("callback_malformed_array.json"),
        raw_fixture("callback_malformed_no_status.json"),
        raw_fixture("callback_malformed_reason_list.json"),
        b"not json",
        b'{"status": 7}',
    ],
    ids=["array", "no-status", "reason-list", "not-json", "status-not-text"],
)
def test_malformed_bodies_are_400_and_kept(momo, payment, body):
    status, answer = deliver(f"{COLLECTION}{token_for(payment)}/", body)
    assert (status, answer["code"]) == (400, "INVALID_FORMAT")
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REJECTED and "malformed" in event.error
    assert event.body == body.decode()  # the evidence, byte for byte (MTN's bodies hold no secret)
    assert len(momo.calls) == 0
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING


def test_get_is_not_how_mtn_calls_back(payment):
    response = Client().get(f"{COLLECTION}{token_for(payment)}/")
    assert response.status_code == 405
    assert set(response["Allow"].split(", ")) == {"POST", "PUT"}
    assert CallbackEvent.objects.count() == 0


# --- duplicates -----------------------------------------------------------------------------------------------


def test_the_same_callback_twice_is_credited_once(momo, payment):
    status_says(momo, "status_successful.json")
    url = f"{COLLECTION}{token_for(payment)}/"
    body = json.dumps(success_body()).encode()
    assert deliver(url, body) == (200, ACK)
    assert deliver(url, body) == (200, ACK)
    assert credited(payment) == AMOUNT
    assert Allocation.objects.count() == 1
    statuses = list(CallbackEvent.objects.order_by("pk").values_list("status", flat=True))
    assert statuses == [CallbackEvent.Status.PROCESSED, CallbackEvent.Status.DUPLICATE]
    assert gets(momo) == 1  # the repeat was answered from the inbox


def test_differently_encoded_copies_on_both_paths_are_credited_once(momo, payment):
    status_says(momo, "status_successful.json")
    data = success_body()
    token = token_for(payment)
    for indent, url, method in [
        (None, f"{COLLECTION}{token}/", "put"),
        (2, COLLECTION, "post"),
        (4, COLLECTION, "put"),
    ]:
        assert deliver(url, json.dumps(data, indent=indent).encode(), method=method) == (200, ACK)
    assert credited(payment) == AMOUNT
    assert Allocation.objects.count() == 1
    statuses = list(CallbackEvent.objects.order_by("pk").values_list("status", flat=True))
    assert statuses == [CallbackEvent.Status.PROCESSED, CallbackEvent.Status.IGNORED, CallbackEvent.Status.IGNORED]


# --- the other kinds: remittance notices, payout and refund results ---------------------------------------------------


@pytest.mark.parametrize("method", ["put", "post"])
def test_a_remittance_notice_is_stored_and_acknowledged(momo, payment, method):
    body = fixture("callback_transfer_successful.json")
    assert deliver("/webhooks/mtn/remittance/", body, method=method) == (200, ACK)
    event = CallbackEvent.objects.get()
    assert (event.kind, event.status) == ("remittance", CallbackEvent.Status.PROCESSED)
    assert "notice" in event.error and json.loads(event.body) == body
    assert len(momo.calls) == 0 and Allocation.objects.count() == 0


def test_a_remittance_notice_on_a_secret_url_we_never_issued_is_401(momo):
    status, body = deliver(
        "/webhooks/mtn/remittance/not-a-token-of-ours/", fixture("callback_transfer_successful.json")
    )
    assert status == 401, body  # today: 200 {"status": "accepted", ...}, the row settled as processed
    assert body["code"] == "AUTH_REQUIRED"
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REJECTED


@pytest.fixture
def sent_payout():
    partner = TreatmentPartnerFactory(payout_provider="mtn", payout_msisdn="46733123470")
    patient = PatientFactory(
        currency="EUR",
        funding_goal=Decimal("150000"),
        funding_received=Decimal("150000"),
        status=Patient.Status.FULLY_FUNDED,
        treatment_partner=partner,
    )
    return Payout.objects.create(
        reference=PAYOUT_REFERENCE,
        patient=patient,
        treatment_partner=partner,
        provider="mtn",
        msisdn=partner.payout_msisdn,
        amount=Decimal("150000"),
        currency="EUR",
        status=Payout.Status.SENT,
        requested_by=staff_user("maker"),
        approved_by=staff_user("checker"),
        provider_reference=PAYOUT_REFERENCE_ID,  # our X-Reference-Id of the transfer
    )


def test_a_transfer_result_is_applied_once_the_transfer_status_get_confirms_it(momo, sent_payout):
    status_says(momo, "transfer_status_successful.json", url=TRANSFER_STATUS_URL)
    body = fixture("callback_transfer_successful.json")
    assert deliver("/webhooks/mtn/disbursement/", body) == (200, ACK)
    sent_payout.refresh_from_db()
    assert (sent_payout.status, sent_payout.receipt) == (Payout.Status.PAID, "363440463")
    sent_payout.patient.refresh_from_db()
    assert sent_payout.patient.status == Patient.Status.IN_TREATMENT
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.PROCESSED
    assert deliver("/webhooks/mtn/disbursement/", body) == (200, ACK)  # MTN never resends; a copy changes nothing
    assert list(CallbackEvent.objects.order_by("pk").values_list("status", flat=True))[-1] == "duplicate"


@pytest.mark.parametrize("answer", ["transfer_status_pending.json", "transfer_status_failed.json"])
def test_a_transfer_result_the_status_get_does_not_confirm_is_held_for_review(momo, sent_payout, answer):
    status_says(momo, answer, url=TRANSFER_STATUS_URL)
    assert deliver("/webhooks/mtn/disbursement/", fixture("callback_transfer_successful.json")) == (200, ACK)
    sent_payout.refresh_from_db()
    assert sent_payout.status == Payout.Status.SENT
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REVIEW


def test_a_transfer_result_naming_no_payout_is_400(momo, sent_payout):
    status, body = deliver("/webhooks/mtn/disbursement/", raw_fixture("callback_transfer_malformed_no_ids.json"))
    assert (status, body["code"]) == (400, "INVALID_FORMAT")
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REJECTED


@pytest.fixture
def sent_refund():
    patient = PatientFactory(currency="EUR", funding_goal=Decimal("1000000"))
    donation = donation_create(
        patient=patient, amount=AMOUNT, currency="EUR", donor=donor_for_guest(name="Nakato", phone="46733123454")
    )
    payment = Payment.objects.create(
        donation=donation,
        reference=donation.reference,
        provider="mtn",
        msisdn="46733123454",
        amount=AMOUNT,
        currency="EUR",
        status=Payment.Status.SUCCEEDED,
        provider_reference=X_REFERENCE_ID,
        receipt="1574559373",
    )
    donation_complete(donation_id=donation.pk)
    return Refund.objects.create(
        reference=REFUND_REFERENCE,
        donation=donation,
        payment=payment,
        provider="mtn",
        amount=Decimal("20000"),
        currency="EUR",
        status=Refund.Status.SENT,
        requested_by=staff_user("refund-maker"),
        approved_by=staff_user("refund-checker"),
        provider_reference=REFUND_REFERENCE_ID,  # our X-Reference-Id of the refund
    )


def test_a_refund_result_confirmed_by_the_refund_status_get_reverses_the_ledger(momo, sent_refund):
    status_says(momo, "refund_status_successful.json", url=REFUND_STATUS_URL)
    assert deliver("/webhooks/mtn/refund/", fixture("callback_refund_successful.json")) == (200, ACK)
    sent_refund.refresh_from_db()
    assert sent_refund.status == Refund.Status.REFUNDED
    amounts = sorted(Allocation.objects.filter(donation=sent_refund.donation).values_list("amount", flat=True))
    assert amounts == [Decimal("-20000"), AMOUNT]
    assert credited(sent_refund.payment) == AMOUNT - Decimal("20000")
    assert Donation.objects.get(pk=sent_refund.donation_id).status == Donation.Status.COMPLETED  # partial
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.PROCESSED


def test_a_refunds_receipt_is_mtns_financial_transaction_id(momo, sent_refund):
    status_says(momo, "refund_status_successful.json", url=REFUND_STATUS_URL)
    assert deliver("/webhooks/mtn/refund/", fixture("callback_refund_successful.json")) == (200, ACK)
    sent_refund.refresh_from_db()
    assert sent_refund.status == Refund.Status.REFUNDED
    assert sent_refund.receipt == "588874327"


def test_a_refund_result_the_status_get_does_not_confirm_is_held_for_review(momo, sent_refund):
    status_says(momo, "refund_status_pending.json", url=REFUND_STATUS_URL)
    assert deliver("/webhooks/mtn/refund/", fixture("callback_refund_successful.json")) == (200, ACK)
    sent_refund.refresh_from_db()
    assert sent_refund.status == Refund.Status.SENT
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REVIEW
    assert Allocation.objects.filter(donation=sent_refund.donation).count() == 1
