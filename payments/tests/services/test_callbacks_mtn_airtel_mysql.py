"""Concurrent MTN MoMo and Airtel Money callbacks against a real MariaDB/MySQL server: one credit, always; a payout
paid once.

Skipped on SQLite (conftest). The far sides are `responses` mocks (patched process-wide, so every thread sees them)
that confirm whatever is asked; each thread has its own test Client and database connection, and all of them are
released at the same instant (helpers.run_together). Identical copies share the inbox's dedup key; differently
encoded ones do not, so only the payment's (or payout's) row lock and the ledger's constraints stand between
them and a second credit.
"""

import json
from collections.abc import Callable
from decimal import Decimal

import pytest
import responses
from django.core.cache import cache
from django.test import Client

from donor.models import Allocation
from patients.models import Patient
from patients.tests.factories import PatientFactory, TreatmentPartnerFactory
from payments.models import CallbackEvent, Payment, Payout
from payments.sandbox.airtel import callback_hash
from payments.tests.factories import PaymentFactory, staff_user, token_for
from payments.tests.helpers import credited, run_together
from payments.tests.providers.airtel import support as airtel
from payments.tests.providers.mtn import support as mtn

pytestmark = [pytest.mark.mysql, pytest.mark.django_db(transaction=True)]

THREADS = 20
MTN_ACK = {"status": "accepted", "message": "Callback received"}
AIRTEL_ACK = {"status": {"code": "200", "message": "Callback received successfully", "success": True}}
MTN_AMOUNT = Decimal("50000")  # fixtures/mtn: EUR, MTN's sandbox currency
AIRTEL_AMOUNT = Decimal("5000")


@pytest.fixture(autouse=True)
def providers(settings):
    """Both rails pointed at their mocked hosts, Airtel with callback authentication on."""
    cache.clear()
    settings.PAYMENT_PROVIDERS = {
        **settings.PAYMENT_PROVIDERS,
        "mtn": {**settings.PAYMENT_PROVIDERS["mtn"], **mtn.KWARGS},
        "airtel": {
            **settings.PAYMENT_PROVIDERS["airtel"],
            "api_url": airtel.API,
            "client_id": "test-client-id",
            "client_secret": "test-client-secret",
            "country": "UG",
            "currency": "UGX",
            "callback_secret": airtel.SECRET,
        },
    }
    settings.SITE_URL = mtn.SITE_URL
    yield settings
    cache.clear()


@pytest.fixture(autouse=True)
def far_sides():
    """MTN's status GETs and Airtel's enquiries say "paid", however often they are asked."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(mtn.COLLECTION_TOKEN_URL, json=mtn.fixture("token_success.json"))
        mock.post(mtn.DISBURSEMENT_TOKEN_URL, json=mtn.fixture("token_success.json"))
        mock.get(f"{mtn.RTP_URL}/{mtn.X_REFERENCE_ID}", json=mtn.fixture("status_successful.json"))
        mock.get(f"{mtn.TRANSFER_URL}/{mtn.PAYOUT_REFERENCE_ID}", json=mtn.fixture("transfer_status_successful.json"))
        mock.post(airtel.TOKEN_URL, json=airtel.fixture("token_success.json"))
        mock.get(airtel.ENQUIRY_URL, json=airtel.fixture("enquiry_success.json"))
        mock.get(airtel.DISBURSEMENT_ENQUIRY_URL, json=airtel.fixture("disbursement_enquiry_success.json"))
        yield mock


def sender(method: str, path: str, body: bytes) -> Callable[[], tuple[int, dict]]:
    """A thunk that delivers the body with a test client of its own (for run_together)."""

    def send() -> tuple[int, dict]:
        response = getattr(Client(), method)(path, data=body, content_type="application/json")
        return response.status_code, response.json()

    return send


def statuses() -> list[str]:
    return list(CallbackEvent.objects.values_list("status", flat=True))


def assert_credited_once(payment: Payment, amount: Decimal) -> None:
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert credited(payment) == amount
    assert Allocation.objects.count() == 1
    assert statuses().count(CallbackEvent.Status.PROCESSED) == 1
    assert CallbackEvent.objects.filter(status=CallbackEvent.Status.REVIEW).count() == 0


# --- MTN MoMo ---------------------------------------------------------------------------------------------


@pytest.fixture
def mtn_payment():
    return PaymentFactory(
        reference=mtn.REFERENCE,
        provider="mtn",
        channel="",
        msisdn="46733123454",
        provider_reference=mtn.X_REFERENCE_ID,
        donation__reference=mtn.REFERENCE,
        donation__amount=MTN_AMOUNT,
        donation__currency="EUR",
        donation__patient__currency="EUR",
        donation__patient__funding_goal=Decimal("1000000"),
    )


def mtn_success() -> dict:
    return mtn.fixture("callback_collection_successful.json") | {"amount": "50000"}


def test_mtn_the_same_put_callback_twenty_times_at_once_credits_once(mtn_payment):
    path = f"/webhooks/mtn/collection/{token_for(mtn_payment)}/"
    body = json.dumps(mtn_success()).encode()
    answers = run_together([sender("put", path, body)] * THREADS)
    assert answers == [(200, MTN_ACK)] * THREADS
    assert_credited_once(mtn_payment, MTN_AMOUNT)
    assert CallbackEvent.objects.count() == THREADS
    assert set(statuses()) <= {CallbackEvent.Status.PROCESSED, CallbackEvent.Status.DUPLICATE, "ignored"}


def test_mtn_differently_encoded_copies_on_both_paths_by_put_and_post_at_once_credit_once(mtn_payment):
    data = mtn_success()
    token = token_for(mtn_payment)
    paths = [f"/webhooks/mtn/collection/{token}/", "/webhooks/mtn/collection/", "/webhooks/mtn/collection"]
    targets = [
        sender("put" if i % 2 else "post", paths[i % len(paths)], json.dumps(data, indent=i).encode())
        for i in range(THREADS)
    ]
    answers = run_together(targets)
    assert answers == [(200, MTN_ACK)] * THREADS
    assert_credited_once(mtn_payment, MTN_AMOUNT)
    assert statuses().count(CallbackEvent.Status.IGNORED) == THREADS - 1


@pytest.fixture
def mtn_payout():
    return sent_payout(
        provider="mtn",
        reference=mtn.PAYOUT_REFERENCE,
        msisdn="46733123470",
        amount=Decimal("150000"),
        currency="EUR",
        provider_reference=mtn.PAYOUT_REFERENCE_ID,
    )


def test_mtn_one_transfer_result_pays_the_payout(mtn_payout):
    body = json.dumps(mtn.fixture("callback_transfer_successful.json")).encode()
    assert sender("put", "/webhooks/mtn/disbursement/", body)() == (200, MTN_ACK)
    mtn_payout.refresh_from_db()
    assert mtn_payout.status == Payout.Status.PAID, CallbackEvent.objects.get().error


def test_mtn_concurrent_transfer_results_pay_the_payout_once(mtn_payout):
    data = mtn.fixture("callback_transfer_successful.json")
    targets = [
        sender("put", "/webhooks/mtn/disbursement/", json.dumps(data, indent=i).encode()) for i in range(THREADS)
    ]
    answers = run_together(targets)
    assert answers == [(200, MTN_ACK)] * THREADS
    assert_paid_once(mtn_payout, receipt="363440463")


# --- Airtel Money -----------------------------------------------------------------------------------------------


@pytest.fixture
def airtel_payment():
    return PaymentFactory(
        reference=airtel.REFERENCE,
        external_id=airtel.AIRTEL_ID,
        provider="airtel",
        channel="",
        msisdn="256712345678",
        provider_reference=None,
        donation__reference=airtel.REFERENCE,
        donation__amount=AIRTEL_AMOUNT,
        donation__currency="UGX",
        donation__patient__currency="UGX",
        donation__patient__funding_goal=Decimal("1000000"),
    )


def airtel_success() -> dict:
    body = airtel.fixture("callback_success.json")
    body["transaction"]["id"] = airtel.AIRTEL_ID
    body["hash"] = callback_hash(airtel.SECRET, body["transaction"])
    return body


def test_airtel_the_same_signed_callback_twenty_times_at_once_credits_once(airtel_payment):
    body = json.dumps(airtel_success()).encode()
    answers = run_together([sender("post", "/webhooks/airtel/payment/", body)] * THREADS)
    assert answers == [(200, AIRTEL_ACK)] * THREADS
    assert_credited_once(airtel_payment, AIRTEL_AMOUNT)
    assert CallbackEvent.objects.count() == THREADS
    assert set(statuses()) <= {CallbackEvent.Status.PROCESSED, CallbackEvent.Status.DUPLICATE, "ignored"}


def test_airtel_differently_encoded_signed_copies_at_once_credit_once(airtel_payment):
    """Re-encoded bytes, the same `transaction`: every copy's hash still matches, and every copy asks Airtel."""
    data = airtel_success()
    targets = [sender("post", "/webhooks/airtel/payment/", json.dumps(data, indent=i).encode()) for i in range(THREADS)]
    answers = run_together(targets)
    assert answers == [(200, AIRTEL_ACK)] * THREADS
    assert_credited_once(airtel_payment, AIRTEL_AMOUNT)
    assert statuses().count(CallbackEvent.Status.IGNORED) == THREADS - 1


@pytest.fixture
def airtel_payout():
    return sent_payout(
        provider="airtel",
        reference=airtel.PAYOUT_REFERENCE,
        msisdn="256700160185",
        amount=Decimal("1000"),
        currency="UGX",
        provider_reference=airtel.PAYOUT_ID,
    )


def test_airtel_concurrent_disbursement_results_pay_the_payout_once(airtel_payout):
    data = airtel.fixture("callback_disbursement_success.json")
    data["data"]["transaction"]["id"] = airtel.PAYOUT_ID
    data["hash"] = callback_hash(airtel.SECRET, data["data"]["transaction"])
    targets = [
        sender("post", "/webhooks/airtel/disbursement/", json.dumps(data, indent=i).encode()) for i in range(THREADS)
    ]
    answers = run_together(targets)
    assert answers == [(200, AIRTEL_ACK)] * THREADS
    assert_paid_once(airtel_payout, receipt="partner-ABCD07026984141")


# --- payouts, both rails ----------------------------------------------------------------------------------------


def sent_payout(*, provider: str, reference: str, msisdn: str, amount: Decimal, currency: str, provider_reference: str):
    partner = TreatmentPartnerFactory(payout_provider=provider, payout_msisdn=msisdn)
    patient = PatientFactory(
        currency=currency,
        funding_goal=amount,
        funding_received=amount,
        status=Patient.Status.FULLY_FUNDED,
        treatment_partner=partner,
    )
    return Payout.objects.create(
        reference=reference,
        patient=patient,
        treatment_partner=partner,
        provider=provider,
        msisdn=msisdn,
        amount=amount,
        currency=currency,
        status=Payout.Status.SENT,
        requested_by=staff_user("maker"),
        approved_by=staff_user("checker"),
        provider_reference=provider_reference,
    )


def assert_paid_once(payout: Payout, *, receipt: str) -> None:
    payout.refresh_from_db()
    assert (payout.status, payout.receipt, payout.needs_review) == (Payout.Status.PAID, receipt, False)
    payout.patient.refresh_from_db()
    assert payout.patient.status == Patient.Status.IN_TREATMENT
    assert statuses().count(CallbackEvent.Status.PROCESSED) == 1
    assert statuses().count(CallbackEvent.Status.IGNORED) == THREADS - 1  # "already paid", nobody asked to look
