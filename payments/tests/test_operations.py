"""Operator surfaces: commands, admin actions, the durable task backend, masked logs."""

import json
import logging
from decimal import Decimal

import pytest
import responses
from django.core.management import call_command
from django.core.management.base import CommandError

from config.logging import MaskSensitiveFilter, mask_text
from payments.models import CallbackEvent, Payment
from payments.tests.factories import PaymentFactory

pytestmark = pytest.mark.django_db
STATUS_URL = "https://sandbox.azampay.co.tz/azampay/gettransactionstatus"
TOKEN_URL = "https://authenticator-sandbox.azampay.co.tz/AppRegistration/GenerateToken"


def callback_body(payment: Payment, password: str = "test-callback-password") -> bytes:
    return json.dumps(
        {
            "transactionstatus": "success",
            "utilityref": payment.reference,
            "reference": payment.provider_reference,
            "amount": str(int(payment.amount)),
            "operator": "Mpesa",
            "msisdn": payment.msisdn,
            "password": password,
        }
    ).encode()


@pytest.fixture
def provider_says_paid():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, json={"data": {"accessToken": "t", "expire": "2099-01-01T00:00:00Z"}, "success": True})
        mock.get(
            STATUS_URL,
            json={
                "data": "Transaction successful.",
                "message": "Request successful.",
                "success": True,
                "statusCode": 200,
            },
        )
        yield mock


def test_replay_callbacks_dry_run_changes_nothing_then_replay_credits(client, capsys, monkeypatch):
    payment = PaymentFactory()
    from payments.services import callbacks

    def broken(*args, **kwargs):
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(callbacks, "payment_apply_result", broken)
    client.post("/api/v1.0/donors/payment/azampay/callback/", callback_body(payment), content_type="application/json")
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.FAILED and "database hiccup" in event.error
    monkeypatch.undo()

    call_command("replay_callbacks", "--dry-run")
    assert "would be accepted" in capsys.readouterr().out
    payment.refresh_from_db()
    event.refresh_from_db()
    assert payment.status == Payment.Status.PENDING and event.status == CallbackEvent.Status.FAILED

    call_command("replay_callbacks", "--id", str(event.pk))
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.donation.patient.allocations.count() == 1


def test_replay_callbacks_unknown_id_is_a_clear_error():
    with pytest.raises(CommandError, match="No callback event with id 424242"):
        call_command("replay_callbacks", "--id", "424242")


def test_reconcile_payments_command_applies_provider_truth(provider_says_paid, capsys):
    payment = PaymentFactory(next_check_at=None)
    call_command("reconcile_payments")
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert "checked 1, changed 1" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["--older-than", "ten minutes"], ["--loop", "0"], ["--limit", "0"]])
def test_reconcile_payments_rejects_nonsense(args):
    with pytest.raises(CommandError):
        call_command("reconcile_payments", *args)


def test_payments_report_counts_per_provider(capsys):
    PaymentFactory(status=Payment.Status.SUCCEEDED, amount=Decimal("5000"))
    PaymentFactory(status=Payment.Status.FAILED)
    call_command("payments_report")
    out = capsys.readouterr().out
    assert "azampay" in out and "5,000" in out
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("payments_report", "--date", "23/11/2026")


@pytest.fixture
def admin_client_logged_in(client, django_user_model):
    admin = django_user_model.objects.create_superuser("ops", "ops@example.org", "ops-pass-123")
    client.force_login(admin)
    return client


def test_admin_pages_render_with_masked_phones(admin_client_logged_in):
    payment = PaymentFactory(msisdn="255712345678")
    for url in [
        "/admin/payments/payment/",
        "/admin/payments/callbackevent/",
        "/admin/donor/donation/",
        "/admin/donor/allocation/",
        "/admin/patients/patient/",
        "/admin/donor/donor/",
        f"/admin/payments/payment/{payment.pk}/change/",
    ]:
        response = admin_client_logged_in.get(url)
        assert response.status_code == 200, url
        assert b"255712345678" not in response.content, url
    assert b"2557****678" in admin_client_logged_in.get("/admin/payments/payment/").content


def test_admin_check_with_provider_action(admin_client_logged_in, provider_says_paid):
    payment = PaymentFactory()
    response = admin_client_logged_in.post(
        "/admin/payments/payment/", {"action": "check_with_provider", "_selected_action": [payment.pk]}, follow=True
    )
    assert response.status_code == 200
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED


def test_admin_dry_run_replay_then_replay(admin_client_logged_in, client):
    payment = PaymentFactory()
    event = CallbackEvent.objects.create(
        provider="azampay",
        body=callback_body(payment, "***").decode(),
        body_digest="x",
        status=CallbackEvent.Status.FAILED,
        trust="trusted",
    )
    response = admin_client_logged_in.post(
        "/admin/payments/callbackevent/", {"action": "dry_run_replay", "_selected_action": [event.pk]}, follow=True
    )
    assert b"would be: accepted" in response.content
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    admin_client_logged_in.post(
        "/admin/payments/callbackevent/", {"action": "replay", "_selected_action": [event.pk]}, follow=True
    )
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    detail = admin_client_logged_in.get(f"/admin/payments/callbackevent/{event.pk}/change/")
    assert b"test-callback-password" not in detail.content


@pytest.mark.django_db(transaction=True)  # the worker closes connections, as it does in production
def test_database_task_backend_queues_verification_for_the_worker(settings, client, provider_says_paid):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    settings.PAYMENT_PROVIDERS = {
        **settings.PAYMENT_PROVIDERS,
        "azampay": {**settings.PAYMENT_PROVIDERS["azampay"], "callback_password": ""},
    }
    from django_tasks_db.models import DBTaskResult

    payment = PaymentFactory()
    response = client.post(
        "/api/v1.0/donors/payment/azampay/callback/", callback_body(payment, ""), content_type="application/json"
    )
    assert response.status_code == 200
    assert DBTaskResult.objects.filter(task_path="payments.services.callbacks.verify_callback").count() == 1
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING  # nothing credited until the worker asks the provider
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload")
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED


def test_logs_mask_phone_numbers_and_secrets():
    assert mask_text("payer 255712345678 paid") == "payer 2557****678 paid"
    assert mask_text('{"password": "hunter2", "x": 1}') == '{"password": ***, "x": 1}' or "hunter2" not in mask_text(
        '{"password": "hunter2", "x": 1}'
    )
    assert "abc.def" not in mask_text("Authorization: Bearer abc.def")
    assert mask_text("ref RHCI-DN-12-20251219120000") == "ref RHCI-DN-12-20251219120000"
    record = logging.LogRecord(
        "payments", logging.INFO, __file__, 1, "phone %s token=%s", ("0712345678", "s3cr3t"), None
    )
    MaskSensitiveFilter().filter(record)
    assert "0712345678" not in record.getMessage() and "s3cr3t" not in record.getMessage()


# --- admin powers are permissions -----------------------------------------------------------------------


def staff_client(client, *permissions):
    from payments.tests.factories import staff_user

    user = staff_user("clerk", "payments.view_payment", "payments.view_callbackevent", *permissions)
    client.force_login(user)
    return client


def test_staff_without_the_check_permission_cannot_ask_the_provider(client, provider_says_paid):
    payment = PaymentFactory()
    clerk = staff_client(client)
    assert b"check_with_provider" not in clerk.get("/admin/payments/payment/").content
    clerk.post("/admin/payments/payment/", {"action": "check_with_provider", "_selected_action": [payment.pk]})
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING


def test_staff_with_the_check_permission_can(client, provider_says_paid):
    payment = PaymentFactory()
    clerk = staff_client(client, "payments.check_payment")
    clerk.post("/admin/payments/payment/", {"action": "check_with_provider", "_selected_action": [payment.pk]})
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED


def test_staff_without_the_replay_permission_cannot_replay(client):
    payment = PaymentFactory()
    event = CallbackEvent.objects.create(
        provider="azampay",
        body=callback_body(payment, "***").decode(),
        body_digest="y",
        status="failed",
        trust="trusted",
    )
    clerk = staff_client(client)
    assert b'value="replay"' not in clerk.get("/admin/payments/callbackevent/").content
    clerk.post("/admin/payments/callbackevent/", {"action": "replay", "_selected_action": [event.pk]})
    event.refresh_from_db()
    assert event.status == CallbackEvent.Status.FAILED
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING


def test_staff_without_the_approve_permission_are_not_offered_approve(client):
    from patients.tests.factories import PatientFactory, TreatmentPartnerFactory
    from payments.models import Payout

    patient = PatientFactory(treatment_partner=TreatmentPartnerFactory())
    clerk = staff_client(client, "payments.view_payout", "payments.add_payout")
    Payout.objects.create(
        reference="RHCI-PO-1", patient=patient, treatment_partner=patient.treatment_partner, msisdn="254708374149",
        amount=Decimal("10"), currency="KES", requested_by=_user("maker"),
    )  # fmt: skip
    page = clerk.get("/admin/payments/payout/").content
    assert b"cancel_request" in page  # the actions are there (the list is not empty) …
    assert b"approve_and_send" not in page and b"resolve_as_failed" not in page  # … but not these


def _user(name):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(name, password="x")
