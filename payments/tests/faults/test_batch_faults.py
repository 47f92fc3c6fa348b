"""A batch of stored callbacks interrupted mid-way, on a real MariaDB: its worker SIGKILLed, or its database
connection cut, after the batch's writes and before its commit (a few seconds each).

The worker is a real process (`manage.py shell` running django-tasks-db's worker loop, production settings,
CALLBACK_BATCH_SIZE=50) whose batch waits, once, between its writes and its commit. The promise: nothing of the
batch is half-written (it was one transaction), every event is still `received`, and the next worker (and the
sweeper, for the events the batch had claimed) credits every payment exactly once: none stranded, none doubled.

    DATABASE_URL=mysql://root@127.0.0.1:3306/donations_faults .venv/bin/pytest -q \
        payments/tests/faults/test_batch_faults.py
"""

import os
import signal
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from donor.models import Allocation, Notice
from patients.models import Patient
from patients.tests.factories import PatientFactory
from payments.faults.processes import BIN, HOST, MARIADB_PORT, ROOT, TcpProxy, wait_until
from payments.faults.rig import Secrets, app_env
from payments.models import CallbackEvent, Payment
from payments.services.dispatch import callbacks_sweep
from payments.services.ledger_check import book_check
from payments.tests.azampay_fakes import ACK, CALLBACK_URL, callback_body
from payments.tests.factories import PaymentFactory
from payments.tests.helpers import poster, worker

pytestmark = [
    pytest.mark.mysql,
    pytest.mark.fault,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("azampay_settings"),
]
COUNT = 60
# The worker's batch stops once between its writes and its commit: it says so in MARK, then waits for GO.
WORKER = """
import os, pathlib, time
from payments.services import callback_batch
apply = callback_batch._apply
def stopping_once(items):
    outcomes = apply(items)
    mark, go = pathlib.Path(os.environ["MARK"]), pathlib.Path(os.environ["GO"])
    if not mark.exists():
        mark.write_text(str(len(items)))
        deadline = time.monotonic() + 60
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    return outcomes
callback_batch._apply = stopping_once
from django_tasks_db.management.commands.db_worker import Worker
Worker(queue_names=["default"], interval=0, batch=True, backend_name="default", startup_delay=False,
       max_tasks=None, worker_id="batch-fault", excluded_queue_names=[]).run()
"""


@pytest.fixture
def backlog(settings) -> list[Payment]:
    """COUNT stored AzamPay success callbacks (and a repeat of every tenth), each with its queued task."""
    settings.CALLBACK_ACK = "stored"
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    patients = [PatientFactory(funding_goal=Decimal("100000000")) for _ in range(3)]
    payments = [PaymentFactory(donation__patient=patients[i % 3]) for i in range(COUNT)]
    for body in [callback_body(p) for p in payments] + [callback_body(p) for p in payments[::10]]:
        assert poster(CALLBACK_URL, body)() == (200, ACK)
    return payments


def start_worker(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    env = app_env(
        database_url=f"mysql://root@{HOST}:{port}/{connection.settings_dict['NAME']}",
        provider_url="http://127.0.0.1:9",  # nothing here asks a provider
        log_dir=tmp_path,
        secrets=Secrets.generate(),
    )
    env |= {"TASKS_BACKEND": "database", "CALLBACK_BATCH_SIZE": "50", "MARK": str(tmp_path / "mark"),
            "GO": str(tmp_path / "go")}  # fmt: skip
    log = (tmp_path / "worker.log").open("wb")
    return subprocess.Popen(
        [str(BIN / "python"), "manage.py", "shell", "-c", WORKER], cwd=ROOT, env=env, stdout=log, stderr=log,
        start_new_session=True,
    )  # fmt: skip


def assert_nothing_half_written() -> None:
    assert not Payment.objects.filter(status=Payment.Status.SUCCEEDED).exists()
    assert not Allocation.objects.exists() and not Notice.objects.exists()
    assert set(CallbackEvent.objects.values_list("status", flat=True)) == {CallbackEvent.Status.RECEIVED}


def assert_each_credited_once(payments: list[Payment]) -> None:
    """After the next worker and the sweeper: every payment credited once, the books clean, nothing open."""
    worker()
    callbacks_sweep(received_before=timezone.now())  # the operator's `reconcile_payments --older-than 0s`
    assert Payment.objects.filter(status=Payment.Status.SUCCEEDED).count() == COUNT
    assert Allocation.objects.count() == COUNT
    assert sum(p.funding_received for p in Patient.objects.all()) == sum(p.amount for p in payments)
    check = book_check()
    assert check.ok, (check.drifts, check.problems)
    assert Notice.objects.filter(channel=Notice.Channel.EMAIL).count() == COUNT
    assert not CallbackEvent.objects.filter(status__in=["received", "failed", "dead", "review"]).exists()


def test_a_worker_killed_mid_batch_strands_nothing_and_doubles_nothing(backlog, tmp_path):
    process = start_worker(tmp_path, MARIADB_PORT)
    try:
        assert wait_until(lambda: (tmp_path / "mark").exists(), timeout=60), (tmp_path / "worker.log").read_text()
        os.killpg(process.pid, signal.SIGKILL)  # between the batch's writes and its commit
        process.wait(10)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert int((tmp_path / "mark").read_text()) > 1  # it was a batch
    assert_nothing_half_written()
    assert_each_credited_once(backlog)


def test_the_database_cut_mid_batch_strands_nothing_and_doubles_nothing(backlog, tmp_path):
    proxy = TcpProxy().start()
    process = start_worker(tmp_path, proxy.port)
    try:
        assert wait_until(lambda: (tmp_path / "mark").exists(), timeout=60), (tmp_path / "worker.log").read_text()
        proxy.cut()  # every connection closed under the open batch; new ones refused
        (tmp_path / "go").touch()  # the batch now tries to commit
        wait_until(lambda: process.poll() is not None, timeout=5)
        assert_nothing_half_written()
        proxy.restore()  # the worker, if still running, carries on through the proxy
        wait_until(lambda: process.poll() is not None, timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        proxy.close()
    assert_each_credited_once(backlog)
