from datetime import timedelta

import pytest
import responses
from django.core.management import call_command
from django.utils import timezone

from payments.models import CallbackEvent, Payment
from payments.tests.factories import PaymentFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("minutes", "rejected", "reported"),
    [
        (0, 0, ["All clear"]),  # pending, but only just created
        (90, 0, ["azampay: 1 payment(s) pending for more than 5 minutes", "no callbacks for an hour"]),
        (0, 2, ["2 of 20 callbacks in the last hour"]),  # over five percent
    ],
    ids=["all-clear", "stuck-and-silent", "error-rate"],
)
def test_the_dry_run_reports_stuck_and_silent_payments_and_a_high_error_rate(capsys, minutes, rejected, reported):
    PaymentFactory()
    Payment.objects.update(created_at=timezone.now() - timedelta(minutes=minutes))
    for i in range(20 if rejected else 0):
        status = CallbackEvent.Status.REJECTED if i < rejected else CallbackEvent.Status.PROCESSED
        CallbackEvent.objects.create(provider="azampay", body="{}", body_digest=str(i), status=status)
    call_command("payments_watchdog", "--dry-run")
    out = capsys.readouterr().out
    assert all(line in out for line in reported), out


def test_alerts_go_to_the_admin_chat(settings, capsys):
    settings.ADMIN_CHAT_ID = "-100123"
    settings.TELEGRAM_BOT_TOKEN = "1:abc"
    settings.TELEGRAM_API_URL = "https://telegram.test"
    PaymentFactory()
    Payment.objects.update(created_at=timezone.now() - timedelta(minutes=10))
    with responses.RequestsMock() as mock:
        sent = mock.post("https://telegram.test/bot1:abc/sendMessage", json={"ok": True, "result": {"message_id": 1}})
        call_command("payments_watchdog")
    assert sent.call_count == 1
    assert b"pending for more than 5 minutes" in sent.calls[0].request.body
    assert "Sent to Telegram." in capsys.readouterr().out
