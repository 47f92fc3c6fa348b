"""The receipt outbox: a receipt is recorded in the same transaction as the credit and sent by the relay, once,
however often the callback is replayed; a task queue that is down when the credit commits, or an SMTP server that
is down when the relay runs, delays the receipt and never loses it; one that keeps failing is parked and alerted.
On MariaDB, two relays at once send each message once."""

import smtplib
from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from donor import notifications
from donor.models import Notice
from donor.notifications import notices_send
from payments.models import CallbackEvent, Payment
from payments.services import coalesce
from payments.services.watchdog import watchdog_alerts
from payments.tests.azampay_fakes import CALLBACK_URL, callback_body
from payments.tests.factories import PaymentFactory
from payments.tests.helpers import post, run_together

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("azampay_settings")]


@pytest.fixture
def payment():
    return PaymentFactory(provider="azampay", status=Payment.Status.PENDING, provider_reference="AZM-OUTBOX-1",
                          donation__donor__email="amina@example.org")  # fmt: skip


def credit(payment, times: int = 1) -> None:
    for copy in range(times):  # the callback again, re-encoded each time (a provider's resend)
        body = callback_body(payment) + b" " * copy
        assert post(CALLBACK_URL, body, run_on_commit=True)[0] == 200


def receipts() -> list:
    return [m for m in mail.outbox if "is confirmed" in m.subject]


def test_a_callback_delivered_three_times_records_and_sends_one_receipt(payment):
    credit(payment, times=3)
    assert Notice.objects.filter(donation=payment.donation, kind="receipt", channel="email").count() == 1
    assert len(receipts()) == 1 and receipts()[0].to == ["amina@example.org"]
    assert Notice.objects.get(channel="email").status == Notice.Status.SENT


class QueueDown:
    def enqueue(self, *args, **kwargs):
        raise ConnectionError("Redis is down")


class NobodyRuns:
    def enqueue(self, *args, **kwargs):
        return None  # queued, and no worker picks it up


def test_a_task_queue_down_when_the_credit_commits_delays_the_receipt_and_the_scheduler_sends_it(payment, monkeypatch):
    monkeypatch.setattr(notifications, "donation_notify", QueueDown())
    credit(payment)
    assert receipts() == []  # not sent yet …
    notice = Notice.objects.get(channel="email")
    assert notice.status == Notice.Status.PENDING  # … but recorded with the credit
    out = StringIO()
    call_command("reconcile_payments", stdout=out)
    assert "notices sent 1" in out.getvalue()
    assert len(receipts()) == 1
    call_command("reconcile_payments", stdout=StringIO())
    assert len(receipts()) == 1  # sent once


def test_an_smtp_outage_is_retried_with_backoff_and_the_receipt_sent_once_it_is_back(payment, monkeypatch):
    from django.core.mail.backends import locmem

    real_send = locmem.EmailBackend.send_messages

    def smtp_down(self, messages):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

    monkeypatch.setattr(locmem.EmailBackend, "send_messages", smtp_down)
    credit(payment)
    notice = Notice.objects.get(channel="email")
    assert (notice.status, notice.attempts) == (Notice.Status.PENDING, 1) and "SMTP" in notice.last_error
    assert notice.next_attempt_at > timezone.now()  # backed off: the next relay run does not hammer it
    assert notices_send()["sent"] == 0

    monkeypatch.setattr(locmem.EmailBackend, "send_messages", real_send)
    Notice.objects.filter(pk=notice.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert notices_send() == {"sent": 1, "failed": 0, "dead": 0}
    assert len(receipts()) == 1
    assert notices_send()["sent"] == 0


def test_a_receipt_that_keeps_failing_is_parked_and_alerted(payment, monkeypatch, settings):
    from django.core.mail.backends import locmem

    settings.NOTICE_MAX_ATTEMPTS = 2

    def refused(self, messages):
        raise smtplib.SMTPRecipientsRefused({"amina@example.org": (550, b"no such user")})

    monkeypatch.setattr(locmem.EmailBackend, "send_messages", refused)
    credit(payment)
    Notice.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert notices_send()["dead"] == 1
    assert any("notice(s) could not be sent" in alert for alert in watchdog_alerts())


@pytest.mark.mysql
@pytest.mark.django_db(transaction=True)
def test_two_relays_at_once_send_each_receipt_once(monkeypatch):
    payments = [
        PaymentFactory(provider="azampay", status=Payment.Status.PENDING, provider_reference=f"AZM-RACE-{i}",
                       donation__donor__email=f"donor{i}@example.org")
        for i in range(6)
    ]  # fmt: skip
    monkeypatch.setattr(notifications, "donation_notify", NobodyRuns())  # leave them all to the relays
    for payment in payments:
        assert post(CALLBACK_URL, callback_body(payment))[0] == 200
    assert Notice.objects.filter(status=Notice.Status.PENDING, channel="email").count() == 6
    sent = run_together([lambda: notices_send(limit=100)["sent"] for _ in range(3)])
    assert sum(sent) == 6 and len(receipts()) == 6
    assert sorted(m.to[0] for m in receipts()) == sorted(f"donor{i}@example.org" for i in range(6))


def test_an_operator_sends_a_parked_notice_again_from_the_admin(payment, admin_user):
    from django.test import Client

    from config.tests.helpers import login_with_second_factor

    admin_client = Client()
    login_with_second_factor(admin_client, admin_user)  # a superuser signs in with its second factor
    credit(payment)
    Notice.objects.update(status=Notice.Status.DEAD, attempts=8, last_error="SMTP refused")
    mail.outbox.clear()
    page = admin_client.get("/admin/donor/notice/?status=dead").content.decode()
    assert "SMTP refused" in page
    action = {"action": "send_again", "_selected_action": list(Notice.objects.values_list("pk", flat=True))}
    assert admin_client.post("/admin/donor/notice/", action, follow=True).status_code == 200
    assert notices_send()["sent"] == Notice.objects.count()
    assert len(receipts()) == 1


def stored_callbacks(count: int, status=CallbackEvent.Status.IGNORED) -> None:
    """`count` deliveries stored just now (settled ones unless told: the yield counts arrivals, then work left)."""
    CallbackEvent.objects.bulk_create(
        CallbackEvent(provider="azampay", body="{}", body_digest=f"{n:064x}", status=status) for n in range(count)
    )


def test_receipts_yield_to_a_callback_storm_for_a_bounded_time_and_are_sent_once_it_passes(payment, settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}  # a backend that can defer
    settings.NOTICE_YIELD_RATE = 20  # 40 callbacks over the last 2 s is a storm
    credit(payment)  # the receipt is recorded with the credit; its relay task waits in the queue
    stored_callbacks(39)
    assert not coalesce.notices_yield()  # 40 with the credit's own delivery: 20 a second is not yet a storm …
    stored_callbacks(1)  # … 41 is

    assert "yielding" in coalesce.notices_relay.call()
    assert receipts() == [] and Notice.objects.get(channel="email").status == Notice.Status.PENDING
    later = DBTaskResult.objects.filter(task_path="payments.services.coalesce.notices_relay", status="READY")
    assert later.filter(run_after__gt=timezone.now()).count() == 1  # it looks again in 2 s, queued once
    out = StringIO()
    call_command("reconcile_payments", stdout=out)
    assert "notices sent 0" in out.getvalue()  # the scheduler's relay yields too

    Notice.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=settings.NOTICE_YIELD_MAX_SECONDS + 1))
    assert not coalesce.notices_yield()  # due for too long: sent whatever the storm
    Notice.objects.update(next_attempt_at=timezone.now())
    CallbackEvent.objects.update(received_at=timezone.now() - timedelta(seconds=3))  # no more arrivals, but …
    stored_callbacks(41, status=CallbackEvent.Status.RECEIVED)
    CallbackEvent.objects.update(received_at=timezone.now() - timedelta(seconds=3))
    assert coalesce.notices_yield()  # … a backlog the drain has not applied yet is still a storm
    CallbackEvent.objects.filter(status=CallbackEvent.Status.RECEIVED).update(status=CallbackEvent.Status.PROCESSED)
    assert coalesce.notices_relay.call() == "sent 1, failed 0"
    assert len(receipts()) == 1
