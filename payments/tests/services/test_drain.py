"""The coalesced drain (issue 20): a storm of stored payment callbacks queues a handful of `callbacks_drain` tasks,
not one task per delivery, and one notice relay per batch, not one `donation_notify` per credit; and no delivery
is left behind — stored while a drain runs, after its last claim, with the flag broken or stuck.

On SQLite and on MariaDB; the `mysql` test posts while two real workers drain.
"""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import DatabaseError
from django.utils import timezone
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

from donor.models import Allocation, Notice
from patients.models import Patient
from patients.tests.factories import PatientFactory
from payments.models import CallbackEvent, Payment, QueuedFlag
from payments.services import coalesce, dispatch
from payments.services.ledger_check import book_check
from payments.tests.azampay_fakes import ACK, CALLBACK_URL, callback_body
from payments.tests.factories import PaymentFactory
from payments.tests.helpers import poster, run_together

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("azampay_settings")]

DRAIN = "payments.services.dispatch.callbacks_drain"
RELAY = "payments.services.coalesce.notices_relay"
PROCESS = "payments.services.dispatch.process_callback"
NOTIFY = "donor.notifications.donation_notify"


@pytest.fixture(autouse=True)
def stored_ack(settings):
    settings.CALLBACK_ACK = "stored"
    settings.CALLBACK_BATCH_SIZE = 10
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


def worker() -> None:
    """django-tasks-db's worker loop as `db_worker --batch` runs it (until the queue is empty)."""
    Worker(queue_names=["default"], interval=0, batch=True, backend_name="default", startup_delay=False,
           max_tasks=None, worker_id=f"test-{threading.get_ident()}", excluded_queue_names=[]).run()  # fmt: skip


def tasks(path: str) -> int:
    return DBTaskResult.objects.filter(task_path=path).count()


def post(payment: Payment) -> None:
    assert poster(CALLBACK_URL, callback_body(payment))() == (200, ACK)


def assert_each_credited_once(payments: list[Payment]) -> None:
    assert Payment.objects.filter(pk__in=[p.pk for p in payments], status="succeeded").count() == len(payments)
    assert Allocation.objects.count() == len(payments)
    assert Allocation.objects.values("donation").distinct().count() == len(payments)
    for patient in Patient.objects.all():
        assert patient.funding_received == sum(a.amount for a in Allocation.objects.filter(patient=patient))
    assert not CallbackEvent.objects.filter(status__in=["received", "failed", "dead"]).exists()
    check = book_check()
    assert check.ok, (check.drifts, check.problems)


def test_a_storm_queues_one_drain_and_one_relay_per_batch_and_credits_each_once(monkeypatch):
    # A relay also hands over to a fresh run after RELAY_RUN_SECONDS (so drains go first): not what this counts, and
    # how often it happens depends on how fast this machine renders the receipt PDFs.
    monkeypatch.setattr("payments.services.coalesce.RELAY_RUN_SECONDS", 600.0)
    payments = [PaymentFactory() for _ in range(35)]
    for payment in payments:
        post(payment)
    assert tasks(DRAIN) == 1 and tasks(PROCESS) == 0  # 35 deliveries, one task waiting for them all

    worker()

    assert_each_credited_once(payments)
    # The drain queued a second one while its claims came back full (room for another worker), never one each.
    assert 1 < tasks(DRAIN) <= 5, tasks(DRAIN)
    # One relay per batch at most (4 batches of 10), coalesced; no task per credit.
    assert 1 <= tasks(RELAY) <= 4 and tasks(NOTIFY) == 0, tasks(RELAY)
    emailed = Notice.objects.filter(kind="receipt", channel=Notice.Channel.EMAIL)
    assert emailed.count() == 35 and not emailed.exclude(status=Notice.Status.SENT).exists()
    assert not DBTaskResult.objects.exclude(status="SUCCESSFUL").exists()
    assert QueuedFlag.objects.get(name=coalesce.DRAIN).queued_at is None


def test_a_callback_stored_after_the_drain_s_last_claim_queues_the_next_drain(monkeypatch):
    first, late = PaymentFactory(), PaymentFactory()
    post(first)
    apply_batch = dispatch.callbacks_apply_batch
    posted: list[bool] = []

    def apply_then_post_when_empty(**kwargs):
        report = apply_batch(**kwargs)
        if not report.claimed and not posted:  # the drain found nothing more and is about to return
            posted.append(True)
            post(late)  # the flag was cleared when the drain started: this delivery queues another
        return report

    monkeypatch.setattr(dispatch, "callbacks_apply_batch", apply_then_post_when_empty)
    worker()

    assert posted and tasks(DRAIN) == 2
    assert_each_credited_once([first, late])


def test_a_callback_stored_while_a_drain_runs_is_credited_by_it_or_the_next(monkeypatch):
    payments = [PaymentFactory() for _ in range(12)]
    for payment in payments[:10]:
        post(payment)
    apply_batch = dispatch.callbacks_apply_batch
    calls: list[int] = []

    def apply_with_deliveries_arriving(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            post(payments[10])  # between the flag's clear and the first claim
        report = apply_batch(**kwargs)
        if len(calls) == 1:
            post(payments[11])  # between two claims
        return report

    monkeypatch.setattr(dispatch, "callbacks_apply_batch", apply_with_deliveries_arriving)
    worker()

    assert_each_credited_once(payments)


def test_a_broken_flag_falls_back_to_one_task_per_delivery(monkeypatch):
    class Down:
        def filter(self, *args, **kwargs):
            raise DatabaseError("the flag table is gone")

    monkeypatch.setattr(QueuedFlag, "objects", Down())
    payments = [PaymentFactory() for _ in range(4)]
    for payment in payments:
        post(payment)
    assert tasks(DRAIN) == 4  # enqueued anyway, each: a spare drain finds nothing and returns

    worker()

    assert_each_credited_once(payments)


def test_a_flag_left_set_by_a_lost_task_is_taken_over_after_the_grace(settings):
    settings.CALLBACK_RETRY_GRACE_SECONDS = 60
    QueuedFlag.objects.create(name=coalesce.DRAIN, queued_at=timezone.now())  # its task was lost with the queue
    first, second = PaymentFactory(), PaymentFactory()
    post(first)
    assert tasks(DRAIN) == 0  # believed waiting: the sweeper would still run it after the grace
    QueuedFlag.objects.update(queued_at=timezone.now() - timedelta(seconds=61))
    post(second)
    assert tasks(DRAIN) == 1

    worker()

    assert_each_credited_once([first, second])


def test_a_queue_that_refuses_the_drain_clears_the_flag_for_the_next_delivery(monkeypatch):
    from django_tasks_db.backend import DatabaseBackend

    enqueue = DatabaseBackend.enqueue
    refused: list[bool] = []

    def down_once(self, task, args, kwargs):
        if not refused:
            refused.append(True)
            raise ConnectionError("queue unreachable")
        return enqueue(self, task, args, kwargs)

    monkeypatch.setattr(DatabaseBackend, "enqueue", down_once)
    first, second = PaymentFactory(), PaymentFactory()
    post(first)  # stored, not queued: due for the sweeper, and the flag is not left set
    assert tasks(DRAIN) == 0 and QueuedFlag.objects.get(name=coalesce.DRAIN).queued_at is None
    post(second)
    assert tasks(DRAIN) == 1

    worker()

    assert_each_credited_once([first, second])


def test_process_callback_still_works_for_tasks_queued_before_the_drain(settings):
    """Tasks from before a deploy, replays: process_callback(event_id) batches as before."""
    payments = [PaymentFactory() for _ in range(3)]
    for payment in payments:
        post(payment)
    event = CallbackEvent.objects.order_by("pk").first()
    assert dispatch.process_callback.call(event.pk) == "accepted"
    assert dispatch.process_callback.call(event.pk) == "settled"
    assert dispatch.callbacks_drain.call() == "0 in 0 batches"
    assert_each_credited_once(payments)


@pytest.mark.mysql
def test_deliveries_posted_while_two_workers_drain_are_each_credited_once(settings):
    settings.CALLBACK_BATCH_SIZE = 20
    patients = [PatientFactory(funding_goal=Decimal("100000000")) for _ in range(3)]
    payments = [PaymentFactory(donation__patient=patients[i % 3]) for i in range(160)]
    for payment in payments[:80]:
        post(payment)
    assert tasks(DRAIN) == 1
    senders = [lambda part=payments[80 + i * 20 : 100 + i * 20]: [post(p) for p in part] for i in range(4)]

    run_together([worker, worker, *senders])
    worker()  # what the two left queued when the last deliveries arrived after they had stopped

    assert_each_credited_once(payments)
    assert tasks(DRAIN) < 80, tasks(DRAIN)  # 160 deliveries, a few drains
    assert tasks(PROCESS) == 0 and tasks(NOTIFY) == 0
