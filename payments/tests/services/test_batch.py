"""Batched application of stored callbacks (CALLBACK_BATCH_SIZE): two real task workers on MariaDB drain a mixed
backlog, each claiming batches with SKIP LOCKED, and every delivery ends as the per-event path would end it.

The MariaDB tests are skipped on SQLite (conftest); the last test runs on both.
"""

import json
import threading
from decimal import Decimal

import pytest
from django.db import connection
from django_tasks_db.management.commands.db_worker import Worker

from donor.models import Allocation, Notice
from patients.models import Patient
from patients.tests.factories import PatientFactory
from payments.models import CallbackEvent, Payment, PaymentHistory
from payments.services import callback_batch
from payments.services.dispatch import process_callback
from payments.services.ledger_check import book_check
from payments.tests.azampay_fakes import ACK, CALLBACK_URL, STATUS_URL, callback_body, fixture
from payments.tests.factories import PaymentFactory
from payments.tests.helpers import poster, run_together

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("azampay_settings")]


@pytest.fixture(autouse=True)
def stored_ack(settings):
    settings.CALLBACK_ACK = "stored"
    settings.CALLBACK_BATCH_SIZE = 50
    settings.CALLBACK_VERIFY_CONCURRENCY = 4


def worker() -> None:
    """django-tasks-db's worker loop as `db_worker --batch` runs it (until the queue is empty)."""
    Worker(queue_names=["default"], interval=0, batch=True, backend_name="default", startup_delay=False,
           max_tasks=None, worker_id=f"test-{threading.get_ident()}", excluded_queue_names=[]).run()  # fmt: skip


def transitions(payment: Payment) -> list[str]:
    return list(PaymentHistory.objects.filter(payment=payment, kind="transition").values_list("cause", flat=True))


@pytest.mark.mysql
def test_two_workers_drain_a_mixed_backlog_in_batches_and_credit_each_payment_once(settings, azam, monkeypatch):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
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

    assert Payment.objects.filter(pk__in=[p.pk for p in paid], status="succeeded").count() == 150
    assert Payment.objects.filter(pk__in=[p.pk for p in failing], status="failed").count() == 3
    assert Allocation.objects.count() == 150  # once each, copies and all
    for patient in Patient.objects.all():
        assert patient.funding_received == sum(a.amount for a in Allocation.objects.filter(patient=patient))
    assert sum(p.funding_received for p in Patient.objects.all()) == sum(p.amount for p in paid)
    check = book_check()
    assert check.ok, (check.drifts, check.problems)
    emailed = Notice.objects.filter(kind="receipt", channel=Notice.Channel.EMAIL)
    assert emailed.count() == 150 and emailed.values("donation").distinct().count() == 150

    wrong.refresh_from_db()
    assert wrong.status == Payment.Status.PENDING
    held = CallbackEvent.objects.get(status=CallbackEvent.Status.REVIEW)
    assert held.payment_id == wrong.pk and held.error == f"amount {wrong.amount + 1:.0f} is not {wrong.amount}"
    assert not CallbackEvent.objects.filter(status__in=["received", "failed", "dead"]).exists()
    assert CallbackEvent.objects.filter(status="processed").count() == 153

    # The one whose step raised was applied by the per-event path; the rest (nearly all) by batches.
    assert transitions(raising) == [f"authenticated callback #{raising.callback_events.order_by('pk')[0].pk}"]
    batched = PaymentHistory.objects.filter(kind="transition", cause__endswith="(batch)").count()
    assert batched >= 140, batched
    assert all(transitions(p)[0].endswith("checked by status query (batch)") for p in failing)


@pytest.mark.mysql
def test_a_batch_skips_the_rows_another_worker_holds(settings):
    """SKIP LOCKED: events locked by a batch in progress are neither waited for nor taken twice."""
    settings.CALLBACK_BATCH_SIZE = 3
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}  # queued; no worker runs
    for payment in [PaymentFactory() for _ in range(6)]:
        assert poster(CALLBACK_URL, callback_body(payment))() == (200, ACK)
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
            release.wait(10)  # hold the locks while the other worker claims
        return own, events

    def run(event_id: int) -> None:
        try:
            process_callback.call(event_id)
        finally:
            connection.close()

    callback_batch._claim = slow_claim
    try:
        holder = threading.Thread(target=run, args=(first.pk,), name="a")
        holder.start()
        assert inside.wait(10)
        other = threading.Thread(target=run, args=(second.pk,), name="b")
        other.start()
        other.join(10)
        release.set()
        holder.join(10)
    finally:
        callback_batch._claim = claim
    assert not set(claims["a"]) & set(claims["b"]) and len(claims["a"]) == len(claims["b"]) == 3
    assert Payment.objects.filter(status="succeeded").count() == 6
    assert Allocation.objects.count() == 6


def test_batch_size_one_is_the_per_event_path(settings):
    settings.CALLBACK_BATCH_SIZE = 1
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    payments = [PaymentFactory() for _ in range(3)]
    for payment in payments:
        assert poster(CALLBACK_URL, callback_body(payment))() == (200, ACK)
    event = CallbackEvent.objects.order_by("pk").first()
    assert process_callback.call(event.pk) == "accepted"
    assert Payment.objects.filter(status="succeeded").count() == 1  # only its own
    settings.CALLBACK_BATCH_SIZE = 50
    last = CallbackEvent.objects.order_by("pk").last()
    assert process_callback.call(last.pk) == "accepted"  # its own and the one still waiting
    assert Payment.objects.filter(status="succeeded").count() == 3
    assert process_callback.call(event.pk) == "settled"
    assert [transitions(p)[0].endswith("(batch)") for p in payments] == [False, True, True]
