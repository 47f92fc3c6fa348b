"""CALLBACK_ACK=stored on a real MariaDB/MySQL server: copies of one callback arriving at once are all stored and
answered, then several workers (and the sweeper) racing over their tasks credit the payment once.

Skipped on SQLite (conftest); CI runs them on MariaDB.
"""

import json
import threading
from decimal import Decimal

import pytest
from django_tasks_db.management.commands.db_worker import Worker

from donor.models import Allocation
from payments.models import CallbackEvent, Payment
from payments.services.dispatch import callbacks_sweep
from payments.tests.azampay_fakes import ACK, CALLBACK_URL, callback_body
from payments.tests.factories import PaymentFactory
from payments.tests.helpers import credited, poster, run_together

pytestmark = [pytest.mark.mysql, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("azampay_settings")]

COPIES = 20


@pytest.fixture(autouse=True)
def stored_ack(settings):
    settings.CALLBACK_ACK = "stored"
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


def worker() -> None:
    """django-tasks-db's worker loop, as `db_worker --batch` runs it (the command itself installs signal
    handlers, which only the main thread may do)."""
    Worker(
        queue_names=["default"],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id=f"test-{threading.get_ident()}",
        excluded_queue_names=[],
    ).run()


def sweeper() -> None:
    callbacks_sweep(received_before=None)


def test_twenty_copies_at_once_then_three_workers_and_the_sweeper_credit_once():
    payment = PaymentFactory(donation__patient__funding_goal=Decimal("1000000"))
    data = json.loads(callback_body(payment))
    # half exact repeats (the inbox links them), half re-encoded (only the payment's row lock can tell)
    bodies = [callback_body(payment)] * (COPIES // 2) + [
        json.dumps(data, indent=i).encode() for i in range(COPIES // 2)
    ]
    answers = run_together([poster(CALLBACK_URL, body) for body in bodies])
    assert answers == [(200, ACK)] * COPIES
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING  # nothing applied in the requests

    run_together([worker, worker, worker, sweeper])

    assert credited(payment) == payment.amount
    assert Allocation.objects.filter(donation=payment.donation).count() == 1
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert CallbackEvent.objects.count() == COPIES
    assert not CallbackEvent.objects.filter(status__in=["received", "failed", "dead", "review"]).exists()
    assert CallbackEvent.objects.filter(status=CallbackEvent.Status.PROCESSED).count() == 1


def test_many_payments_drained_by_racing_workers_each_credited_once():
    payments = [PaymentFactory(donation__patient__funding_goal=Decimal("100000000")) for _ in range(30)]
    for payment in payments:
        for _ in range(2):  # every callback delivered twice
            assert poster(CALLBACK_URL, callback_body(payment))() == (200, ACK)

    run_together([worker, worker, sweeper])

    assert Allocation.objects.count() == len(payments)
    for payment in payments:
        assert credited(payment) == payment.amount
    assert Payment.objects.filter(status=Payment.Status.SUCCEEDED).count() == len(payments)
