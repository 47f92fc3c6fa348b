"""The M-Pesa STK callback through the site's pipeline (inbox → authenticate → parse → verify → apply).

Daraja is mocked with `responses`; the Django test client posts the callbacks.
"""

import json
from decimal import Decimal
from pathlib import Path

import pytest
import responses
from django.core.cache import cache
from django.test import Client, TestCase

from donor.models import Allocation
from payments.models import CallbackEvent, Payment
from payments.tests.factories import PaymentFactory, token_for

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "mpesa"
API = "https://daraja.test"
TOKEN_URL = f"{API}/oauth/v1/generate"
QUERY_URL = f"{API}/mpesa/stkpushquery/v1/query"
ACK = {"ResultCode": 0, "ResultDesc": "Accepted"}
CHECKOUT_ID = "ws_CO_191220191020363925"
PATHS = [
    "/webhooks/mpesa/stkpush/",
    "/webhooks/mpesa/stkpush",
    "/api/v1/payments/mpesa/callback",
    "/api/v1/payments/mpesa/callback/",
    "/mpesa/callback",
    "/mpesa/callback/",
]


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


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
            "trust_callbacks": False,
            "allowed_ips": [],
            "ip_allowlist_strict": False,
        },
    }
    yield settings
    cache.clear()


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


def mock_daraja(query_fixture: str, status: int = 200):
    responses.get(TOKEN_URL, json=fixture("token_success.json"))
    answer = fixture(query_fixture)
    if "CheckoutRequestID" in answer:
        answer["CheckoutRequestID"] = CHECKOUT_ID
    responses.post(QUERY_URL, json=answer, status=status)


def post(path: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    with TestCase.captureOnCommitCallbacks(execute=True):  # the verify task runs on commit
        response = Client().post(path, data=data, content_type="application/json")
    assert "Location" not in response  # never a redirect
    return response.status_code, response.json()


def success_body(checkout_id: str = CHECKOUT_ID) -> dict:
    body = fixture("callback_success_balance_without_value.json")
    body["Body"]["stkCallback"]["CheckoutRequestID"] = checkout_id
    return body


@responses.activate
@pytest.mark.parametrize("path", PATHS)
def test_callback_confirmed_by_query_credits_once(payment, path):
    mock_daraja("query_success.json")
    assert post(path, success_body()) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.donation.patient.__class__.objects.get(pk=payment.donation.patient_id).funding_received == Decimal(
        "1.00"
    )
    assert len([c for c in responses.calls if c.request.url == QUERY_URL]) == 1
    event = CallbackEvent.objects.get()
    assert event.kind == "stkpush" and event.status == CallbackEvent.Status.PROCESSED


@responses.activate
def test_token_url_callback_is_still_confirmed_by_query(payment):
    mock_daraja("query_pending_500.json", status=500)
    status, body = post(f"/webhooks/mpesa/stkpush/{token_for(payment)}/", success_body())
    assert (status, body) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REVIEW


@responses.activate
def test_forged_success_with_query_4999_is_not_credited(payment):
    mock_daraja("query_pending_4999.json")
    assert post("/webhooks/mpesa/stkpush/", success_body()) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert Allocation.objects.count() == 0
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REVIEW


@responses.activate
def test_success_callback_but_query_says_cancelled_applies_the_query(payment):
    mock_daraja("query_cancelled_1032.json")
    assert post("/webhooks/mpesa/stkpush/", success_body()) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.CANCELLED
    assert "1032" in payment.failure_reason
    assert Allocation.objects.count() == 0


@responses.activate
def test_trust_setting_applies_a_token_url_callback_without_query(payment, settings):
    settings.PAYMENT_PROVIDERS["mpesa"]["trust_callbacks"] = True
    status, body = post(f"/webhooks/mpesa/stkpush/{token_for(payment)}/", success_body())
    assert (status, body) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.receipt == "NLJ7RT61SV"
    assert responses.calls == [] or all(c.request.url != QUERY_URL for c in responses.calls)


@responses.activate
def test_wrong_token_rejected(payment):
    status, body = post("/webhooks/mpesa/stkpush/forged-token/", success_body())
    assert status == 401 and body["code"] == "AUTH_REQUIRED"
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REJECTED
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING


@responses.activate
def test_strict_ip_allowlist_rejects_other_sources(payment, settings):
    settings.PAYMENT_PROVIDERS["mpesa"]["allowed_ips"] = ["196.201.214.200"]
    settings.PAYMENT_PROVIDERS["mpesa"]["ip_allowlist_strict"] = True
    status, _ = post("/webhooks/mpesa/stkpush/", success_body())  # the test client is 127.0.0.1
    assert status == 401
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REJECTED


@responses.activate
def test_soft_ip_allowlist_only_logs(payment, settings, caplog):
    settings.PAYMENT_PROVIDERS["mpesa"]["allowed_ips"] = ["196.201.214.200"]
    mock_daraja("query_success.json")
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


@responses.activate
def test_duplicate_delivery_answered_without_reprocessing(payment):
    mock_daraja("query_success.json")
    body = json.dumps(success_body()).encode()
    assert post("/webhooks/mpesa/stkpush/", body) == (200, ACK)
    assert post("/webhooks/mpesa/stkpush/", body) == (200, ACK)
    assert post("/mpesa/callback", body) == (200, ACK)  # same kind on the alias: still the same delivery
    assert Allocation.objects.count() == 1
    assert CallbackEvent.objects.filter(status=CallbackEvent.Status.DUPLICATE).count() == 2


@responses.activate
def test_late_failure_after_success_is_ignored(payment):
    mock_daraja("query_success.json")
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


@responses.activate
def test_query_about_another_checkout_id_is_held_for_review(payment):
    responses.get(TOKEN_URL, json=fixture("token_success.json"))
    responses.post(QUERY_URL, json=fixture("query_success.json"))  # names ws_CO_13012021093521236557
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


@responses.activate
def test_neutral_stk_path_with_token_for_the_callback_url_override(payment):
    mock_daraja("query_success.json")
    assert post(f"/webhooks/stk/{token_for(payment)}", success_body()) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
