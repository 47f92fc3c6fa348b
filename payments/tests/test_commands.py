"""Operator commands: replay_callbacks, reconcile_payments, payments_report, and db_worker running what the
durable task backend queued."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from payments.models import CallbackEvent, Payment
from payments.tests.azampay_fakes import CALLBACK_URL, callback_body
from payments.tests.factories import PaymentFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("azampay_settings")]


def test_replay_callbacks_dry_run_changes_nothing_then_replay_credits(client, capsys, monkeypatch):
    payment = PaymentFactory()
    from payments.services import callbacks

    def broken(*args, **kwargs):
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(callbacks, "payment_apply_result", broken)
    client.post(CALLBACK_URL, callback_body(payment), content_type="application/json")
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


def test_reconcile_payments_command_applies_provider_truth(azam_says_paid, capsys):
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


@pytest.mark.django_db(transaction=True)  # the worker closes connections, as it does in production
def test_database_task_backend_queues_verification_for_the_worker(settings, client, azam_says_paid):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    settings.PAYMENT_PROVIDERS = {
        **settings.PAYMENT_PROVIDERS,
        "azampay": {**settings.PAYMENT_PROVIDERS["azampay"], "callback_password": ""},
    }
    from django_tasks_db.models import DBTaskResult

    payment = PaymentFactory()
    response = client.post(CALLBACK_URL, callback_body(payment, password=""), content_type="application/json")
    assert response.status_code == 200
    assert DBTaskResult.objects.filter(task_path="payments.services.callbacks.verify_callback").count() == 1
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING  # nothing credited until the worker asks the provider
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload")
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED


def test_sandbox_help_describes_every_rails_simulator():
    from payments.management.commands.sandbox import Command

    text = " ".join(Command().create_parser("manage.py", "sandbox").format_help().split())
    for rail, prefix in [
        ("AzamPay", "/azampay"),
        ("M-Pesa Daraja", "/daraja"),
        ("MTN MoMo", "/mtn"),
        ("Airtel Money", "/airtel"),
        ("Telegram", "/telegram"),
    ]:
        assert rail in text and f"({prefix}" in text
    assert "on every simulator" in text  # --token-lifetime is not AzamPay's alone
    assert "/webhooks/airtel/payment/" in text  # where --callback-url sends Airtel's callbacks
