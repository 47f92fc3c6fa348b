"""Concurrent duplicate M-Pesa STK callbacks against a real MariaDB/MySQL server: one credit, always.

Skipped on SQLite (conftest). Daraja's STK query is mocked with `responses` (patched process-wide, so every
thread sees it); each thread has its own test Client and database connection.
"""

import json
from decimal import Decimal

import pytest

from donor.models import Allocation
from payments.models import CallbackEvent, Payment
from payments.tests.factories import PaymentFactory, token_for
from payments.tests.helpers import credited, poster, run_together
from payments.tests.mpesa_fakes import ACK, QUERY_URL, fixture

pytestmark = [pytest.mark.mysql, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("mpesa_settings")]

CHECKOUT_ID = "ws_CO_191220191020363925"
THREADS = 20


@pytest.fixture(autouse=True)
def query_says_paid(daraja):
    """Daraja's STK Push Query confirms the payment, however often it is asked."""
    daraja.post(QUERY_URL, json=fixture("query_success.json") | {"CheckoutRequestID": CHECKOUT_ID})
    return daraja


@pytest.fixture
def payment():
    return PaymentFactory(
        provider="mpesa",
        channel="",
        msisdn="254708374149",
        provider_reference=CHECKOUT_ID,
        donation__amount=Decimal("1.00"),
        donation__currency="KES",
        donation__patient__currency="KES",
        donation__patient__funding_goal=Decimal("100000"),
    )


def success_body() -> dict:
    body = fixture("callback_success_balance_without_value.json")
    body["Body"]["stkCallback"]["CheckoutRequestID"] = CHECKOUT_ID
    return body


def assert_credited_once(payment):
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert credited(payment) == Decimal("1.00")
    assert Allocation.objects.count() == 1


def test_the_same_stk_callback_twenty_times_at_once_credits_once(payment):
    body = json.dumps(success_body()).encode()
    answers = run_together([poster("/webhooks/mpesa/stkpush/", body)] * THREADS)
    assert answers == [(200, ACK)] * THREADS
    assert_credited_once(payment)
    assert CallbackEvent.objects.count() == THREADS
    assert CallbackEvent.objects.filter(status=CallbackEvent.Status.PROCESSED).count() == 1


def test_differently_encoded_copies_on_every_path_at_once_credit_once(payment):
    """Bytes differ, so the inbox's dedup key cannot help: the payment row lock must."""
    data = success_body()
    paths = [
        "/webhooks/mpesa/stkpush/",
        f"/webhooks/mpesa/stkpush/{token_for(payment)}/",
        "/api/v1/payments/mpesa/callback",
        "/mpesa/callback",
    ]
    targets = [poster(paths[i % len(paths)], json.dumps(data, indent=i).encode()) for i in range(THREADS)]
    answers = run_together(targets)
    assert answers == [(200, ACK)] * THREADS
    assert_credited_once(payment)
    assert CallbackEvent.objects.filter(status=CallbackEvent.Status.PROCESSED).count() == 1
    assert CallbackEvent.objects.filter(status=CallbackEvent.Status.IGNORED).count() == THREADS - 1


def test_trusted_token_callbacks_at_once_credit_once(payment, settings):
    settings.PAYMENT_PROVIDERS["mpesa"]["trust_callbacks"] = True
    data = success_body()
    path = f"/webhooks/mpesa/stkpush/{token_for(payment)}/"
    answers = run_together([poster(path, json.dumps(data, indent=i).encode()) for i in range(THREADS)])
    assert answers == [(200, ACK)] * THREADS
    assert_credited_once(payment)
    payment.refresh_from_db()
    assert payment.receipt == "NLJ7RT61SV"
