"""The inbox is a durable work queue: nothing acknowledged is lost when a worker dies, the cache is down, a
handler crashes, a client is throttled or a body is poison. Through the real URLs (django.test.Client)."""

import re
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import OperationalError
from django.test import override_settings
from django.utils import timezone

from donor.models import Allocation
from patients.tests.factories import PatientFactory
from payments.models import CallbackEvent, Payment
from payments.services.dispatch import callback_replay, callbacks_sweep
from payments.services.inbox import callback_record
from payments.services.payments import payment_confirm
from payments.services.reconcile import payments_reconcile
from payments.services.watchdog import watchdog_alerts
from payments.tests import mpesa_fakes as mpesa
from payments.tests.azampay_fakes import ACK, CALLBACK_URL, STATUS_URL, callback_body
from payments.tests.factories import PaymentFactory
from payments.tests.helpers import credited

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("azampay_settings")]

ERROR_KEYS = {"error", "message", "code"}
PAYBILL = "c2b_confirmation_hashed_msisdn.json"


@pytest.fixture
def payment() -> Payment:
    return PaymentFactory(donation__amount=Decimal("5000"), donation__patient__funding_goal=Decimal("1000000"))


def stored_only(body: bytes, provider: str = "azampay", kind: str = "payment", token: str = "") -> CallbackEvent:
    """What a worker killed right after storing a delivery leaves behind: the row, never handled."""
    return callback_record(
        provider_code=provider, kind=kind, body=body, headers={}, client_ip="127.0.0.1", url_token=token
    )


@pytest.fixture
def azam_pending(azam):
    """Reconciliation asks AzamPay about the payment too: it is still pending there."""
    azam.get(STATUS_URL, json={"success": True, "data": "Pending"})
    return azam


def make_due(event: CallbackEvent) -> None:
    CallbackEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


# --- a worker dies between storing and handling, or its handler crashes: every entry point finishes it --


def azampay_delivery(request) -> tuple:
    payment = request.getfixturevalue("payment")
    request.getfixturevalue("azam_pending")
    body = callback_body(payment)
    return stored_only(body), CALLBACK_URL, body, ACK, payment.donation.patient, Decimal("5000")


def paybill_delivery(request) -> tuple:
    """A paybill confirmation on its secret URL, credited on its word: the money already moved."""
    for name in ("mpesa_settings", "paybill_rules", "daraja"):
        request.getfixturevalue(name)
    patient = PatientFactory(code="PAT-KE-07", currency="KES", funding_goal=Decimal("100000"))
    path, body = f"/webhooks/mpesa/c2b/confirmation/{mpesa.C2B_TOKEN}/", mpesa.raw_fixture(PAYBILL)
    stored = stored_only(body, "mpesa", "c2b_confirmation", mpesa.C2B_TOKEN)
    return stored, path, body, mpesa.ACK, patient, Decimal("1500.00")


@pytest.mark.parametrize("delivery", [azampay_delivery, paybill_delivery], ids=["azampay", "paybill"])
def test_a_resend_of_a_delivery_that_never_finished_is_handled_not_swallowed(client, request, delivery):
    """A stored delivery whose worker died is credited once by the provider's resend; the sweep then ignores it."""
    original, path, body, ack, patient, amount = delivery(request)
    assert original.status == CallbackEvent.Status.RECEIVED and credited(patient) == 0
    assert not Allocation.objects.exists()

    for _ in range(3):  # the resend, then more copies
        response = client.post(path, data=body, content_type="application/json")
        assert response.status_code == 200 and response.json() == ack
    assert credited(patient) == amount
    resend = CallbackEvent.objects.exclude(pk=original.pk).order_by("pk").first()
    assert resend.duplicate_of_id == original.pk and resend.status == CallbackEvent.Status.PROCESSED
    payment = Payment.objects.get()

    assert payments_reconcile(older_than=timedelta(0)).replayed >= 1  # the original, still open
    original.refresh_from_db()
    assert original.status == CallbackEvent.Status.IGNORED and original.payment_id == payment.pk
    assert credited(patient) == amount and Allocation.objects.count() == 1
    assert not CallbackEvent.objects.exclude(status__in=CallbackEvent.SETTLED).exists()


def crashed(client, payment: Payment, monkeypatch, *, crashing: bool = False) -> CallbackEvent:
    """A delivery whose handler crashed: stored and acknowledged, left failed for a later attempt (the handler
    still `crashing` for those)."""

    def crash(**kwargs):
        raise RuntimeError("lock wait timeout")

    monkeypatch.setattr("payments.services.callbacks.payment_apply_result", crash)
    response = client.post(CALLBACK_URL, data=callback_body(payment), content_type="application/json")
    if not crashing:
        monkeypatch.undo()
    assert response.status_code == 200  # stored: the provider need not send it again
    event = CallbackEvent.objects.get()
    assert (event.status, event.attempts, event.error) == ("failed", 1, "RuntimeError: lock wait timeout")
    return event


def throttled(client, payment: Payment, monkeypatch) -> CallbackEvent:
    """An authentic delivery over the rate limit: answered 429 in the error shape, its body kept for later."""
    with override_settings(WEBHOOK_RATE_LIMIT_PER_MINUTE=0):
        response = client.post(CALLBACK_URL, data=callback_body(payment), content_type="application/json")
    assert response.status_code == 429 and set(response.json()) >= ERROR_KEYS
    assert response["X-RateLimit-Limit"] == "0"
    event = CallbackEvent.objects.get()
    assert (event.status, event.trust, event.body_kept) == (CallbackEvent.Status.RECEIVED, "trusted", True)
    assert event.next_attempt_at is not None
    return event


UNFINISHED = {
    "worker-died": lambda client, payment, monkeypatch: stored_only(callback_body(payment)),
    "handler-crashed": crashed,
    "throttled": throttled,
}


def by_reconcile_command(event: CallbackEvent) -> int:
    out = StringIO()
    call_command("reconcile_payments", "--older-than", "0s", stdout=out)
    summary = re.search(r"inbox events re-run (\d+) \(settled (\d+), dead 0\)", out.getvalue())
    assert summary is not None, out.getvalue()
    return int(summary[2])


def by_replay(event: CallbackEvent) -> int:
    """An operator's replay answers an outcome, not a count: the event counts if this replay settled it."""
    event.refresh_from_db()
    was_open = not event.is_settled
    callback_replay(event=event)
    event.refresh_from_db()
    return int(was_open and event.is_settled)


# Each entry point that finishes open deliveries, run once, and whether it needs the event due; it answers how
# many events that run settled.
ENTRY_POINTS = {
    "by_sweep": (lambda event: callbacks_sweep().settled, True),
    "by_reconcile_when_due": (lambda event: payments_reconcile().events_settled, True),
    # An operator's explicit older_than: every open event, due or not.
    "by_reconcile_older_than_now": (lambda event: payments_reconcile(older_than=timedelta(0)).events_settled, False),
    "by_reconcile_command": (by_reconcile_command, False),
    "by_replay": (by_replay, False),
}


@pytest.mark.parametrize("unfinished", UNFINISHED.values(), ids=UNFINISHED)
@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_every_entry_point_finishes_an_unfinished_delivery_and_credits_it_once(
    client, payment, azam_pending, monkeypatch, unfinished, entry_point
):
    """Not before its time: within its grace or backoff a worker may still be on it, and a dry run changes nothing."""
    event = unfinished(client, payment, monkeypatch)
    left = (event.status, event.attempts)
    assert callbacks_sweep().examined == 0
    assert payments_reconcile().replayed == 0
    assert callback_replay(event=event, dry_run=True).code == "accepted"
    event.refresh_from_db()
    assert (event.status, event.attempts) == left
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING and credited(payment) == 0 and not Allocation.objects.exists()

    finish, when_due = ENTRY_POINTS[entry_point]
    if when_due:
        make_due(event)
    assert finish(event) == 1
    event.refresh_from_db()
    payment.refresh_from_db()
    assert event.status == CallbackEvent.Status.PROCESSED and event.next_attempt_at is None
    assert payment.status == Payment.Status.SUCCEEDED and credited(payment) == Decimal("5000")

    assert finish(event) == 0  # run again: nothing left to do
    make_due(event)
    assert callbacks_sweep().examined == 0  # settled: never due again
    assert credited(payment) == Decimal("5000")
    assert Allocation.objects.filter(donation=payment.donation).count() == 1


# --- a handler crashes: backoff, then dead --------------------------------------------------------------


def test_a_crashing_handler_leaves_the_event_failed_with_its_traceback_then_dead(
    client, payment, monkeypatch, settings
):
    settings.CALLBACK_MAX_ATTEMPTS = 3
    event = crashed(client, payment, monkeypatch, crashing=True)  # and its traceback, for whoever looks
    assert event.traceback.startswith("Traceback (most recent call last):")
    assert "in crash" in event.traceback and event.traceback.rstrip().endswith("RuntimeError: lock wait timeout")
    first_delay = event.next_attempt_at - event.processed_at

    make_due(event)
    assert callbacks_sweep().settled == 0
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("failed", 2)
    assert event.next_attempt_at - event.processed_at > first_delay  # exponential backoff

    make_due(event)
    report = callbacks_sweep()
    event.refresh_from_db()
    assert (event.status, event.attempts, report.dead, event.next_attempt_at) == ("dead", 3, 1, None)
    assert any("parked as dead" in line for line in watchdog_alerts())

    make_due(event)
    assert callbacks_sweep().examined == 0  # parked: only a person replays it
    monkeypatch.undo()
    call_command("replay_callbacks", "--status", "dead")
    event.refresh_from_db()
    assert event.status == CallbackEvent.Status.PROCESSED and credited(payment) == Decimal("5000")


# --- the cache is down (a throttled delivery: UNFINISHED) -------------------------------------------------------------


@pytest.fixture
def cache_down(settings):
    """Redis as CACHE_URL, with nothing listening: every cache call raises a ConnectionError."""
    working = settings.CACHES
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    yield
    settings.CACHES = working  # before the other fixtures clear the cache on their way out


def test_with_the_cache_down_a_status_query_still_gets_a_token_and_a_trusted_callback_is_stored_and_credited(
    client, payment, cache_down, azam_pending
):
    """The provider token normally lives in the cache; without it, one is fetched for the request."""
    result, outcome = payment_confirm(payment_id=payment.pk)
    assert result is not None and outcome.status == "pending"
    response = client.post(CALLBACK_URL, data=callback_body(payment), content_type="application/json")
    assert response.status_code == 200 and response.json() == ACK
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.PROCESSED
    assert credited(payment) == Decimal("5000")


# --- poison bodies --------------------------------------------------------------------------------------

WEBHOOK_PATHS = [CALLBACK_URL, "/webhooks/mtn/collection/", "/webhooks/airtel/payment/"] + [
    f"/webhooks/mpesa/{end}/" for end in ("stkpush", "c2b/validation", "c2b/confirmation", "b2c/result", "b2c/timeout")
]


@pytest.mark.parametrize("path", WEBHOOK_PATHS)
@pytest.mark.parametrize(
    "body",
    [b"[" * 20000 + b"]" * 20000, b'{"a":' * 5000 + b"1" + b"}" * 5000, b"\xff\xfe not utf-8", b"[1, 2]", b""],
    ids=["deep-array", "deep-object", "not-utf8", "not-an-object", "empty"],
)
def test_poison_bodies_are_a_json_400_and_never_retried(client, path, body):
    response = client.post(path, data=body, content_type="application/json")

    assert response.status_code in (400, 401), response.content[:200]
    assert response["Content-Type"].startswith("application/json") and set(response.json()) >= ERROR_KEYS
    event = CallbackEvent.objects.get()
    assert event.is_settled, event.status  # rejected or review: never due for the sweeper
    assert event.next_attempt_at is None


@pytest.mark.parametrize("length", ["abc", "-5", "1e3"])
def test_a_content_length_that_is_not_a_number_of_bytes_is_a_json_400(client, length):
    response = client.post(CALLBACK_URL, data=b"{}", content_type="application/json", CONTENT_LENGTH=length)
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_FORMAT" and "Content-Length" in response.json()["message"]
    assert CallbackEvent.objects.count() == 0


def test_deeply_nested_json_at_the_donation_api_is_a_400(client):
    response = client.post("/api/v1.0/donors/donations/", data=b"[" * 50000, content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "INVALID_FORMAT"


@pytest.mark.parametrize("while_", ["recording", "handling"])
def test_the_database_going_away_is_a_503_and_the_resend_is_handled(client, payment, monkeypatch, while_):
    def database_gone(*args, **kwargs):
        raise OperationalError(2006, "MySQL server has gone away")

    with monkeypatch.context() as patch:
        if while_ == "recording":
            patch.setattr(CallbackEvent.objects, "create", database_gone)
        else:
            patch.setattr("payments.services.callbacks.payment_apply_result", database_gone)
            patch.setattr("payments.services.dispatch.callback_event_mark", database_gone)
        response = client.post(CALLBACK_URL, data=callback_body(payment), content_type="application/json")

    assert response.status_code == 503 and response.json()["code"] == "SERVICE_UNAVAILABLE"
    assert set(response.json()) == ERROR_KEYS
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.PENDING
    stored = list(CallbackEvent.objects.values_list("status", flat=True))
    assert stored == ([] if while_ == "recording" else [CallbackEvent.Status.RECEIVED])  # stored: still work to do
    resend = client.post(CALLBACK_URL, data=callback_body(payment), content_type="application/json")
    assert resend.status_code == 200 and credited(payment) == Decimal("5000")
