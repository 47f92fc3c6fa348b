"""One scheduler at a time: `reconcile_payments --loop` runs a cycle only while it holds its database lease, a
second scheduler skips its cycles and says who holds it, a dead holder's lease expires, and finished task rows are
pruned once a day. On MariaDB, schedulers racing for the lease: exactly one wins."""

from datetime import timedelta
from io import StringIO
from unittest.mock import Mock

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from payments.management.commands import reconcile_payments as command
from payments.models import SchedulerLease
from payments.services.scheduler import lease_acquire, lease_release
from payments.tests.helpers import run_together

pytestmark = pytest.mark.django_db


def test_a_lease_is_one_holders_until_it_expires_and_one_without_renewal_is_a_once_a_day_guard():
    assert lease_acquire("job", "host-a", seconds=60)
    assert lease_acquire("job", "host-a", seconds=60)  # renewed by its holder
    assert not lease_acquire("job", "host-b", seconds=60)
    SchedulerLease.objects.filter(name="job").update(expires_at=timezone.now() - timedelta(seconds=1))  # a dies
    assert lease_acquire("job", "host-b", seconds=60)
    assert not lease_acquire("job", "host-a", seconds=60)
    lease_release("job", "host-b")
    assert lease_acquire("job", "host-a", seconds=60)
    assert lease_acquire("daily", "host-a", seconds=86400, renew=False)
    assert not lease_acquire("daily", "host-a", seconds=86400, renew=False)  # not even its holder, until it expires


def cycles(monkeypatch, runs: int) -> str:
    """Run the scheduler for `runs` cycles (the operator stops it after the last) and return what it printed."""
    monkeypatch.setattr(command.time, "sleep", Mock(side_effect=[None] * (runs - 1) + [KeyboardInterrupt]))
    out = StringIO()
    with pytest.raises(KeyboardInterrupt):
        call_command("reconcile_payments", "--loop", "5", stdout=out, stderr=out)
    return out.getvalue()


def test_a_second_scheduler_skips_its_cycles_while_the_first_holds_the_lease_then_takes_over_and_prunes_once_a_day(
    monkeypatch, settings
):
    settings.TASKS_BACKEND = "database"
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    settings.TASK_RESULTS_KEEP_DAYS = 14
    _old, new = (
        DBTaskResult.objects.create(
            status="SUCCESSFUL", task_path="payments.services.dispatch.process_callback", queue_name="default",
            args_kwargs={"args": [], "kwargs": {}}, backend_name="default",
            finished_at=timezone.now() - timedelta(days=days),
        )
        for days in (15, 1)
    )  # fmt: skip
    assert lease_acquire(command.LEASE, "other-host:123:abcd", seconds=600)
    printed = cycles(monkeypatch, 2)
    assert printed.count("skipped: the scheduler lease is held by other-host:123:abcd") == 2
    assert "checked" not in printed and "pruned" not in printed  # it ran nothing
    lease_release(command.LEASE, "other-host:123:abcd")
    printed = cycles(monkeypatch, 3)
    assert printed.count("checked 0") == 3 and printed.count("pruned finished task rows") == 1
    assert list(DBTaskResult.objects.values_list("pk", flat=True)) == [new.pk]  # the old one is gone
    assert SchedulerLease.objects.get(name=command.LEASE).expires_at <= timezone.now()  # released on the way out


@pytest.mark.mysql
@pytest.mark.django_db(transaction=True)
def test_schedulers_racing_for_a_free_lease_one_wins():
    for attempt in range(3):
        name = f"race-{attempt}"
        won = run_together([lambda i=i, n=name: lease_acquire(n, f"host-{i}", seconds=60) for i in range(6)])
        assert won.count(True) == 1, won


def test_the_loop_survives_a_failed_run_or_scheduled_command_and_runs_each_command_once_per_its_interval(
    monkeypatch, settings
):
    runs, ran = [], []
    real = command.payments_reconcile

    def flaky(**kwargs):
        runs.append(kwargs)
        if len(runs) == 1:
            raise RuntimeError("database blip")  # this cycle's scheduled commands are not reached either
        return real(**kwargs)

    def fake_call_command(name, *arguments, **options):
        if name == "prune_db_task_results":
            return
        ran.append((name, arguments))
        if name == "balance_query":
            raise RuntimeError("provider down")

    monkeypatch.setattr(command, "payments_reconcile", flaky)
    monkeypatch.setattr(command, "call_command", fake_call_command)
    settings.SCHEDULED_COMMANDS = [
        ("balance_query", ["--all"], 3600),
        ("statement_pull", ["--all"], 3600),
        ("never", [], 0),
    ]
    printed = cycles(monkeypatch, 3)
    assert "database blip" in printed and "balance_query failed (RuntimeError: provider down)" in printed
    assert len(runs) == 3
    assert ran == [("balance_query", ("--all",)), ("statement_pull", ("--all",))]  # once each in three cycles
    SchedulerLease.objects.filter(name="scheduled:statement_pull").update(expires_at=timezone.now())
    cycles(monkeypatch, 1)
    assert ran[-1] == ("statement_pull", ("--all",)) and len(ran) == 3
