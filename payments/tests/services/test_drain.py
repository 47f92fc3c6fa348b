"""The coalesced drain (issue 20) and batched application (CALLBACK_BATCH_SIZE): stored payment callbacks queue a
handful of `callbacks_drain` tasks and one notice relay per batch, never a task per delivery or per credit; each batch
is claimed with SKIP LOCKED and ends every delivery as the per-event path would. The `mysql` tests run two workers."""

import json
import threading
from datetime import timedelta
from decimal import Decimal
from unittest.mock import Mock

import pytest
from django.db import DatabaseError
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from donor.models import Allocation, Notice
from patients.models import Patient
from patients.tests.factories import PatientFactory
from payments.models import CallbackEvent, Payment, PaymentHistory, QueuedFlag
from payments.services import callback_batch, coalesce, dispatch
from payments.services.dispatch import callbacks_sweep, process_callback
from payments.services.ledger_check import book_check
from payments.tests.azampay_fakes import ACK, CALLBACK_URL, STATUS_URL, callback_body, fixture
from payments.tests.factories import PaymentFactory
from payments.tests.helpers import poster, run_together, worker

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


def tasks(path: str) -> int:
    return DBTaskResult.objects.filter(task_path=path).count()


def post(payment: Payment) -> None:
    assert poster(CALLBACK_URL, callback_body(payment))() == (200, ACK)


def stored(count: int, **fields) -> list[Payment]:
    """`count` payments, each with its success callback stored (and its drain queued, where one is not yet)."""
    payments = [PaymentFactory(**fields) for _ in range(count)]
    for payment in payments:
        post(payment)
    return payments


def assert_each_credited_once(payments: list[Payment]) -> None:
    assert Payment.objects.filter(pk__in=[p.pk for p in payments], status="succeeded").count() == len(payments)
    assert Allocation.objects.count() == len(payments)
    assert Allocation.objects.values("donation").distinct().count() == len(payments)
    for patient in Patient.objects.all():
        assert patient.funding_received == sum(a.amount for a in Allocation.objects.filter(patient=patient))
    assert not CallbackEvent.objects.filter(status__in=["received", "failed", "dead"]).exists()
    check = book_check()
    assert check.ok, (check.drifts, check.problems)


def the_next_delivery_queues_a_drain_that_credits_both(first: Payment) -> None:
    [second] = stored(1)
    assert tasks(DRAIN) == 1
    worker()
    assert_each_credited_once([first, second])


def test_a_storm_queues_one_drain_and_one_relay_per_batch_and_credits_each_once(monkeypatch):
    # A relay also hands over to a fresh run after RELAY_RUN_SECONDS (so drains go first): not what this counts, and
    # how often it happens depends on how fast this machine renders the receipt PDFs.
    monkeypatch.setattr("payments.services.coalesce.RELAY_RUN_SECONDS", 600.0)
    payments = stored(35)
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


@pytest.mark.parametrize("arriving", ["before-the-first-claim", "between-two-claims", "after-the-last-claim"])
def test_a_callback_stored_while_a_drain_runs_is_credited_by_it_or_the_next(monkeypatch, arriving):
    """After its last claim, the drain is about to return: the flag was cleared when it started, so the late
    delivery queues the next drain."""
    payments = [*stored(5), PaymentFactory()]
    apply_batch = dispatch.callbacks_apply_batch
    late = [payments[5]]

    def apply_with_a_delivery_arriving(**kwargs):
        if late and arriving == "before-the-first-claim":
            post(late.pop())
        report = apply_batch(**kwargs)
        if late and (arriving == "between-two-claims" or (arriving == "after-the-last-claim" and not report.claimed)):
            post(late.pop())
        return report

    monkeypatch.setattr(dispatch, "callbacks_apply_batch", apply_with_a_delivery_arriving)
    worker()

    assert not late and tasks(DRAIN) == 2
    assert_each_credited_once(payments)


def test_a_broken_flag_falls_back_to_one_task_per_delivery(monkeypatch):
    monkeypatch.setattr(QueuedFlag, "objects", Mock(filter=Mock(side_effect=DatabaseError("the flag table is gone"))))
    payments = stored(4)
    assert tasks(DRAIN) == 4  # enqueued anyway, each: a spare drain finds nothing and returns

    worker()

    assert_each_credited_once(payments)


def test_a_flag_left_set_by_a_lost_task_is_taken_over_after_the_grace(settings):
    settings.CALLBACK_RETRY_GRACE_SECONDS = 60
    QueuedFlag.objects.create(name=coalesce.DRAIN, queued_at=timezone.now())  # its task was lost with the queue
    [first] = stored(1)
    assert tasks(DRAIN) == 0  # believed waiting: the sweeper would still run it after the grace
    QueuedFlag.objects.update(queued_at=timezone.now() - timedelta(seconds=61))
    the_next_delivery_queues_a_drain_that_credits_both(first)


def test_a_queue_that_refuses_the_drain_loses_nothing_and_clears_the_flag_for_the_next_delivery(monkeypatch):
    from django_tasks_db.backend import DatabaseBackend

    enqueue = DatabaseBackend.enqueue
    refused: list[bool] = []

    def down_once(self, task, args, kwargs):
        if not refused:
            refused.append(True)
            raise ConnectionError("queue unreachable")
        return enqueue(self, task, args, kwargs)

    monkeypatch.setattr(DatabaseBackend, "enqueue", down_once)
    [first] = stored(1)  # stored (the provider need not resend), not queued: due for the sweeper; no flag left set
    assert tasks(DRAIN) == 0 and QueuedFlag.objects.get(name=coalesce.DRAIN).queued_at is None
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.RECEIVED
    assert callbacks_sweep(received_before=event.received_at).settled == 1
    first.refresh_from_db()
    assert first.status == Payment.Status.SUCCEEDED
    the_next_delivery_queues_a_drain_that_credits_both(first)


def transitions(payment: Payment) -> list[str]:
    return list(PaymentHistory.objects.filter(payment=payment, kind="transition").values_list("cause", flat=True))


def test_batch_size_one_is_the_per_event_path_and_a_task_queued_before_the_drain_batches_as_before(settings):
    """Tasks from before a deploy, replays: process_callback(event_id) still works, and batches."""
    settings.CALLBACK_BATCH_SIZE = 1
    payments = stored(3)
    event = CallbackEvent.objects.order_by("pk").first()
    assert process_callback.call(event.pk) == "accepted"
    assert Payment.objects.filter(status="succeeded").count() == 1  # only its own
    settings.CALLBACK_BATCH_SIZE = 50
    last = CallbackEvent.objects.order_by("pk").last()
    assert process_callback.call(last.pk) == "accepted"  # its own and the one still waiting
    assert process_callback.call(event.pk) == "settled"
    assert dispatch.callbacks_drain.call() == "0 in 0 batches"
    assert_each_credited_once(payments)
    assert [transitions(p)[0].endswith("(batch)") for p in payments] == [False, True, True]


@pytest.mark.mysql
def test_deliveries_posted_while_two_workers_and_the_sweeper_drain_are_each_credited_once(settings):
    settings.CALLBACK_BATCH_SIZE = 20
    patients = [PatientFactory(funding_goal=Decimal("100000000")) for _ in range(3)]
    payments = [PaymentFactory(donation__patient=patients[i % 3]) for i in range(160)]
    for payment in payments[:80]:
        post(payment)
    assert tasks(DRAIN) == 1
    senders = [lambda part=payments[80 + i * 20 : 100 + i * 20]: [post(p) for p in part] for i in range(4)]

    run_together([worker, worker, lambda: callbacks_sweep(received_before=None), *senders])
    worker()  # what the two left queued when the last deliveries arrived after they had stopped

    assert_each_credited_once(payments)
    assert tasks(DRAIN) < 80, tasks(DRAIN)  # 160 deliveries, a few drains
    assert tasks(PROCESS) == 0 and tasks(NOTIFY) == 0


@pytest.mark.mysql
def test_two_workers_drain_a_mixed_backlog_in_batches_and_credit_each_payment_once(settings, azam, monkeypatch):
    settings.CALLBACK_BATCH_SIZE = 50
    settings.CALLBACK_VERIFY_CONCURRENCY = 4
    azam.get(STATUS_URL, json=fixture("status_failed.json"))  # asked only about the failure callbacks
    patients = [PatientFactory(funding_goal=Decimal("100000000")) for _ in range(4)]
    failing = [PaymentFactory(donation__patient=patients[0]) for _ in range(3)]
    paid = [PaymentFactory(donation__patient=patients[i % 4]) for i in range(150)]
    wrong = PaymentFactory(donation__patient=patients[1])
    raising = paid[77]
    bodies = [callback_body(p, status="failure") for p in failing]  # first: verified together, in threads
    bodies += [callback_body(p) for p in paid]
    bodies += [callback_body(p) for p in paid[:25]]  # exact repeats: linked to their first copy
    bodies += [json.dumps(json.loads(callback_body(p)), indent=2).encode() for p in paid[25:46]]  # re-encoded
    bodies.append(callback_body(wrong, amount=f"{wrong.amount + 1:.0f}"))
    assert len(bodies) == 200
    for body in bodies:
        assert poster(CALLBACK_URL, body)() == (200, ACK)

    plan = callback_batch._plan

    def plan_that_breaks_once_payment(item, payment, *args):
        if payment.pk == raising.pk:
            raise RuntimeError("a bug in one delivery's step")
        return plan(item, payment, *args)

    monkeypatch.setattr(callback_batch, "_plan", plan_that_breaks_once_payment)
    run_together([worker, worker])

    assert_each_credited_once(paid)  # copies and all
    assert Payment.objects.filter(pk__in=[p.pk for p in failing], status="failed").count() == 3
    assert sum(p.funding_received for p in Patient.objects.all()) == sum(p.amount for p in paid)
    emailed = Notice.objects.filter(kind="receipt", channel=Notice.Channel.EMAIL)
    assert emailed.count() == 150 and emailed.values("donation").distinct().count() == 150

    wrong.refresh_from_db()
    assert wrong.status == Payment.Status.PENDING
    held = CallbackEvent.objects.get(status=CallbackEvent.Status.REVIEW)
    assert held.payment_id == wrong.pk and held.error == f"amount {wrong.amount + 1:.0f} is not {wrong.amount}"
    assert CallbackEvent.objects.filter(status="processed").count() == 153

    # The one whose step raised was applied by the per-event path; the rest (nearly all) by batches.
    assert transitions(raising) == [f"authenticated callback #{raising.callback_events.order_by('pk')[0].pk}"]
    batched = PaymentHistory.objects.filter(kind="transition", cause__endswith="(batch)").count()
    assert batched >= 140, batched
    assert all(transitions(p)[0].endswith("checked by status query (batch)") for p in failing)


@pytest.mark.mysql
def test_a_batch_skips_the_rows_another_worker_holds(settings, monkeypatch):
    """SKIP LOCKED: events locked by a batch in progress are neither waited for nor taken twice."""
    settings.CALLBACK_BATCH_SIZE = 3  # queued; no worker runs
    stored(6)
    first, second = list(CallbackEvent.objects.order_by("pk"))[:2]
    claims: dict[str, list[int]] = {}
    inside = threading.Event()
    release = threading.Event()
    claim = callback_batch._claim

    def slow_claim(event_id, size):
        own, events = claim(event_id, size)
        claims.setdefault(threading.current_thread().name, []).extend(e.pk for e in events)
        if event_id == first.pk:
            inside.set()
            assert release.wait(10), "the other worker waited for these rows"  # held until it is done
        return own, events

    def the_other_worker() -> None:
        assert inside.wait(10)
        try:
            process_callback.call(second.pk)
        finally:
            release.set()

    monkeypatch.setattr(callback_batch, "_claim", slow_claim)
    run_together([lambda: process_callback.call(first.pk), the_other_worker])
    held, other = claims.values()  # the holder claimed first
    assert not set(held) & set(other) and len(held) == len(other) == 3
    assert Payment.objects.filter(status="succeeded").count() == 6
    assert Allocation.objects.count() == 6
