"""The M-Pesa STK callback through the site's pipeline (inbox → authenticate → parse → verify → apply).

Daraja is mocked with `responses`; the Django test client posts the callbacks.
"""

import json
from decimal import Decimal

import pytest
from django.test import Client

from donor.models import Allocation
from payments.models import CallbackEvent, Payment
from payments.tests.factories import PaymentFactory, token_for
from payments.tests.helpers import credited
from payments.tests.helpers import post as post_json
from payments.tests.mpesa_fakes import ACK, QUERY_URL, fixture

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("mpesa_settings", "daraja")]

CHECKOUT_ID = "ws_CO_191220191020363925"
PATHS = [
    "/webhooks/mpesa/stkpush/",
    "/webhooks/mpesa/stkpush",
    "/api/v1/payments/mpesa/callback",
    "/api/v1/payments/mpesa/callback/",
    "/mpesa/callback",
    "/mpesa/callback/",
]


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


def mock_query(daraja, query_fixture: str, status: int = 200):
    """What Daraja's STK Push Query answers (about our payment's CheckoutRequestID)."""
    answer = fixture(query_fixture)
    if "CheckoutRequestID" in answer:
        answer["CheckoutRequestID"] = CHECKOUT_ID
    daraja.post(QUERY_URL, json=answer, status=status)


def post(path: str, body) -> tuple[int, dict]:
    return post_json(path, body, run_on_commit=True)  # the verify task runs on commit


def success_body(checkout_id: str = CHECKOUT_ID) -> dict:
    body = fixture("callback_success_balance_without_value.json")
    body["Body"]["stkCallback"]["CheckoutRequestID"] = checkout_id
    return body


@pytest.mark.parametrize("path", PATHS)
def test_callback_confirmed_by_query_credits_once(daraja, payment, path):
    mock_query(daraja, "query_success.json")
    assert post(path, success_body()) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert credited(payment) == Decimal("1.00")
    assert len([c for c in daraja.calls if c.request.url == QUERY_URL]) == 1
    event = CallbackEvent.objects.get()
    assert event.kind == "stkpush" and event.status == CallbackEvent.Status.PROCESSED


def test_a_callback_claiming_another_amount_credits_what_was_asked_and_says_so(daraja, payment):
    """Daraja's STK query carries no amount: the query's word (paid) applies to the amount we asked for, and the
    stored event keeps the contradiction for whoever looks at it."""
    mock_query(daraja, "query_success.json")
    body = success_body()
    items = body["Body"]["stkCallback"]["CallbackMetadata"]["Item"]
    next(item for item in items if item["Name"] == "Amount")["Value"] = 1000
    assert post("/webhooks/mpesa/stkpush/", body) == (200, ACK)
    assert credited(payment) == Decimal("1.00")
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.PROCESSED
    assert event.error == "callback claimed 1000, we asked 1.00; the provider's answer was applied"


def test_token_url_callback_is_still_confirmed_by_query(daraja, payment):
    mock_query(daraja, "query_pending_500.json", status=500)
    status, body = post(f"/webhooks/mpesa/stkpush/{token_for(payment)}/", success_body())
    assert (status, body) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REVIEW


def test_forged_success_with_query_4999_is_not_credited(daraja, payment):
    mock_query(daraja, "query_pending_4999.json")
    assert post("/webhooks/mpesa/stkpush/", success_body()) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert Allocation.objects.count() == 0
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REVIEW


def test_success_callback_but_query_says_cancelled_applies_the_query(daraja, payment):
    mock_query(daraja, "query_cancelled_1032.json")
    assert post("/webhooks/mpesa/stkpush/", success_body()) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.CANCELLED
    assert "1032" in payment.failure_reason
    assert Allocation.objects.count() == 0


def test_trust_setting_applies_a_token_url_callback_without_query(daraja, payment, settings):
    settings.PAYMENT_PROVIDERS["mpesa"]["trust_callbacks"] = True
    status, body = post(f"/webhooks/mpesa/stkpush/{token_for(payment)}/", success_body())
    assert (status, body) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.receipt == "NLJ7RT61SV"
    assert daraja.calls == [] or all(c.request.url != QUERY_URL for c in daraja.calls)


def test_wrong_token_rejected(payment):
    status, body = post("/webhooks/mpesa/stkpush/forged-token/", success_body())
    assert status == 401 and body["code"] == "AUTH_REQUIRED"
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REJECTED
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING


def test_strict_ip_allowlist_rejects_other_sources(payment, settings):
    settings.PAYMENT_PROVIDERS["mpesa"]["allowed_ips"] = ["196.201.214.200"]
    settings.PAYMENT_PROVIDERS["mpesa"]["ip_allowlist_strict"] = True
    status, _ = post("/webhooks/mpesa/stkpush/", success_body())  # the test client is 127.0.0.1
    assert status == 401
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REJECTED


def test_soft_ip_allowlist_only_logs(daraja, payment, settings, caplog):
    settings.PAYMENT_PROVIDERS["mpesa"]["allowed_ips"] = ["196.201.214.200"]
    mock_query(daraja, "query_success.json")
    assert post("/webhooks/mpesa/stkpush/", success_body()) == (200, ACK)
    assert "not in MPESA_ALLOWED_IPS" in caplog.text
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED


@pytest.mark.parametrize(
    "body",
    [b"not json", b"{}", b'{"Body": {"stkCallback": {"ResultCode": 0}}}', b'{"Body": {"stkCallback": "x"}}'],
)
def test_malformed_callback_is_400_and_stored(payment, body):
    status, answer = post("/webhooks/mpesa/stkpush/", body)
    assert status == 400 and answer["code"] == "INVALID_FORMAT"
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REJECTED and "malformed" in event.error


def test_unknown_checkout_id_is_404(payment):
    status, answer = post("/webhooks/mpesa/stkpush/", success_body("ws_CO_000000000000000000"))
    assert status == 404
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REJECTED


def test_duplicate_delivery_answered_without_reprocessing(daraja, payment):
    mock_query(daraja, "query_success.json")
    body = json.dumps(success_body()).encode()
    assert post("/webhooks/mpesa/stkpush/", body) == (200, ACK)
    assert post("/webhooks/mpesa/stkpush/", body) == (200, ACK)
    assert post("/mpesa/callback", body) == (200, ACK)  # same kind on the alias: still the same delivery
    assert Allocation.objects.count() == 1
    assert CallbackEvent.objects.filter(status=CallbackEvent.Status.DUPLICATE).count() == 2


def test_late_failure_after_success_is_ignored(daraja, payment):
    mock_query(daraja, "query_success.json")
    assert post("/webhooks/mpesa/stkpush/", success_body()) == (200, ACK)
    cancelled = fixture("callback_cancelled_1032.json")
    cancelled["Body"]["stkCallback"]["CheckoutRequestID"] = CHECKOUT_ID
    assert post("/webhooks/mpesa/stkpush/", cancelled) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert Allocation.objects.count() == 1


def test_get_is_405_json(payment):
    response = Client().get("/webhooks/mpesa/stkpush/")
    assert response.status_code == 405
    assert response.json()["error"]


def test_query_about_another_checkout_id_is_held_for_review(daraja, payment):
    daraja.post(QUERY_URL, json=fixture("query_success.json"))  # names ws_CO_13012021093521236557
    assert post("/webhooks/mpesa/stkpush/", success_body()) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REVIEW


def test_deploy_checks_warn_about_weak_mpesa_policy(settings):
    from payments.checks import callback_trust_policy

    settings.PAYMENT_PROVIDERS["mpesa"].update({"trust_callbacks": True, "allowed_ips": [], "callback_url": ""})
    settings.SITE_URL = "http://donate.example.org"
    ids = {problem.id for problem in callback_trust_policy(None)}
    settings.PAYMENT_PROVIDERS["mpesa"].update({"c2b_token": "", "b2c_token": ""})
    ids = {problem.id for problem in callback_trust_policy(None)}
    assert {"payments.W003", "payments.W004", "payments.W005", "payments.W006", "payments.W007"} <= ids
    settings.PAYMENT_PROVIDERS["mpesa"].update(
        {"trust_callbacks": False, "allowed_ips": ["196.201.214.200"], "c2b_token": "a", "b2c_token": "b"}
    )
    settings.SITE_URL = "https://donate.example.org"
    ids = {problem.id for problem in callback_trust_policy(None)}
    assert not ids & {"payments.W003", "payments.W004", "payments.W005", "payments.W006", "payments.W007"}


def test_neutral_stk_path_with_token_for_the_callback_url_override(daraja, payment):
    mock_query(daraja, "query_success.json")
    assert post(f"/webhooks/stk/{token_for(payment)}", success_body()) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED


def test_a_push_whose_answer_was_lost_is_confirmed_by_the_id_its_own_secret_url_callback_names(daraja, payment):
    """No CheckoutRequestID stored (the push timed out after it left us): the callback on the payment's own secret
    URL is the authenticated source of the id, so the query about that id binds to this payment."""
    Payment.objects.filter(pk=payment.pk).update(provider_reference=None)
    mock_query(daraja, "query_success.json")
    assert post(f"/webhooks/mpesa/stkpush/{token_for(payment)}/", success_body()) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED and payment.provider_reference == CHECKOUT_ID
    assert credited(payment) == Decimal("1.00")
