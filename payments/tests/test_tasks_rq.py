"""The Redis task backend (TASKS_BACKEND=rq: django-tasks-rq on django-rq and RQ) against a real Redis.

A real path through the site: an unauthenticated M-Pesa STK callback is stored and answered, its verification
task (`verify_callback`) goes into Redis, an RQ worker (in-process, burst mode, the django-tasks-rq Job class,
as `manage.py rqworker --job-class django_tasks_rq.Job` runs it) asks Daraja (mocked with `responses`) and
credits the patient; the receipt task it enqueues runs on the same queue. Each test has a queue of its own in
Redis database 11 (TEST_TASKS_REDIS_URL overrides it) and deletes only that queue's keys, so parallel runs
(SQLite and MariaDB at once) do not take each other's jobs. The worker needs what the request committed and
the request's on_commit hooks must fire as in production, so these tests use the transactional database.

Redis unreachable: these tests skip with the reason, except under CI (CI=true), where they run and fail.
"""

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import django_rq
import pytest
import redis
from django.core import checks, mail
from django.utils import timezone
from django_tasks_rq import Job, RQBackend
from rq import Queue, SimpleWorker

from donor.models import Allocation
from payments import checks as payment_checks
from payments.models import CallbackEvent, Payment
from payments.services import callbacks, dispatch
from payments.services.dispatch import callbacks_sweep
from payments.tests.azampay_fakes import ACK as AZAMPAY_ACK
from payments.tests.azampay_fakes import CALLBACK_URL as AZAMPAY_CALLBACK_URL
from payments.tests.azampay_fakes import callback_body
from payments.tests.factories import PaymentFactory
from payments.tests.helpers import credited
from payments.tests.helpers import post as post_json
from payments.tests.mpesa_fakes import ACK, QUERY_URL, fixture

REDIS_URL = os.environ.get("TEST_TASKS_REDIS_URL", "redis://127.0.0.1:6379/11")
CLOSED_PORT_URL = "redis://127.0.0.1:1/11"  # nothing listens on port 1: every command raises ConnectionError
CHECKOUT_ID = "ws_CO_191220191020363925"
CALLBACK_PATH = "/webhooks/mpesa/stkpush/"
VERIFY = "payments.services.callbacks.verify_callback"
NOTIFY = "donor.notifications.donation_notify"
DRAIN = "payments.services.dispatch.callbacks_drain"  # … a payment callback's: the drain, queued once for a backlog
RELAY = "payments.services.coalesce.notices_relay"  # the batch's notices: one relay per batch, not one per credit
ROOT = Path(__file__).resolve().parents[2]


def _redis_unreachable() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping()
    except redis.RedisError as exc:
        return f"Redis is unreachable at {REDIS_URL} ({type(exc).__name__}: {exc}); start redis-server"
    return ""


_UNREACHABLE = _redis_unreachable()
needs_redis = pytest.mark.skipif(bool(_UNREACHABLE) and not os.environ.get("CI"), reason=_UNREACHABLE or "-")


@dataclass
class RQ:
    """The test's own queue: its name, the RQ queue object, and a burst worker to run what is in it."""

    name: str
    queue: Queue

    def work(self) -> list[str]:
        """Run every job in the queue (and those they enqueue) in this process, as `rqworker --burst` would:
        the tasks that ran (the module path of each, sorted), failed ones suffixed " FAILED"."""
        done_before = self.done()
        worker = SimpleWorker([self.queue], connection=self.queue.connection, job_class=Job)
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            worker.work(burst=True)
        finally:
            for sig, handler in handlers.items():  # RQ installs its own; give pytest back Ctrl-C
                signal.signal(sig, handler)
            self.queue.connection.delete(worker.key)  # its record would expire soon anyway
        failed = set(self.queue.failed_job_registry.get_job_ids())
        return sorted(
            self.func_name(job_id) + (" FAILED" if job_id in failed else "") for job_id in self.done() - done_before
        )

    def done(self) -> set[str]:
        return set(self.queue.finished_job_registry.get_job_ids()) | set(self.queue.failed_job_registry.get_job_ids())

    def func_name(self, job_id: str) -> str:
        return Job.fetch(job_id, connection=self.queue.connection).func_name

    def job_ids(self) -> set[str]:
        queue = self.queue
        ids = set(queue.get_job_ids())
        for registry in (
            queue.started_job_registry,
            queue.finished_job_registry,
            queue.failed_job_registry,
            queue.deferred_job_registry,
            queue.scheduled_job_registry,
            queue.canceled_job_registry,
        ):
            ids.update(registry.get_job_ids())
        return ids

    def flush(self) -> None:
        """Delete this queue's jobs, their results and registries; nothing else in the database."""
        connection = self.queue.connection
        for job_id in self.job_ids():
            try:
                Job.fetch(job_id, connection=connection).delete()
            except Exception:  # noqa: S112 — a job already expired or half-written: its keys go below
                continue
        self.queue.delete(delete_jobs=True)
        leftovers = list(connection.scan_iter(match=f"*:{self.name}*"))
        if leftovers:
            connection.delete(*leftovers)


class OneQueueRQBackend(RQBackend):
    """django-tasks-rq's RQBackend, with every task sent to one queue: this test's own (OPTIONS["QUEUE"]).

    The code enqueues on the "default" queue (verify_callback, the receipt's donation_notify, …); here they all
    land in a queue no other run shares. Enqueueing, the Job class and the worker are the library's own."""

    def enqueue(self, task, args, kwargs):
        return super().enqueue(task.using(queue_name=self.options["QUEUE"]), args, kwargs)


@pytest.fixture
def rq_queue(settings) -> Iterator[RQ]:
    """TASKS_BACKEND=rq as config/settings.py sets it up, on a queue named for this test only."""
    name = f"test-rq-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    settings.RQ_QUEUES = {"default": {"URL": REDIS_URL}, name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 60}}
    settings.RQ = {"JOB_CLASS": "django_tasks_rq.Job"}
    settings.TASKS = {
        "default": {
            "BACKEND": f"{__name__}.OneQueueRQBackend",
            "QUEUES": ["default", name],
            "OPTIONS": {"QUEUE": name},
        }
    }
    rq = RQ(name=name, queue=django_rq.get_queue(name, job_class=Job))
    rq.flush()
    yield rq
    rq.flush()


@pytest.fixture(params=["handled", "stored"])
def ack(request, settings) -> str:
    """CALLBACK_ACK: "handled" (the request runs the handler, which queues the verification) or "stored" (the
    production example: the request only stores the delivery and queues `process_callback`)."""
    if request.param == "stored" and not hasattr(dispatch, "process_callback"):
        pytest.skip("CALLBACK_ACK=stored is not in this tree (no payments.services.dispatch.process_callback)")
    settings.CALLBACK_ACK = request.param
    return request.param


def jobs(ack: str, *names: str) -> list[str]:
    """The tasks a burst worker runs for one callback, sorted as RQ.work() reports them: under "stored" the
    worker's drain verifies inline, so it takes the verification's place (one queue hop, not two), and its
    batch's relay takes the receipt task's."""
    stored = {VERIFY: DRAIN, NOTIFY: RELAY} if ack == "stored" else {}
    return sorted([stored.get(name, name) for name in names])


@pytest.fixture
def payment(db) -> Payment:
    return PaymentFactory(
        provider="mpesa",
        channel="",
        msisdn="254708374149",
        provider_reference=CHECKOUT_ID,
        donation__amount=Decimal("10.00"),
        donation__currency="KES",
        donation__donor__email="wanjiru@example.org",
        donation__patient__currency="KES",
        donation__patient__funding_goal=Decimal("100000"),
    )


def success_body() -> dict:
    body = fixture("callback_success_balance_without_value.json")
    body["Body"]["stkCallback"]["CheckoutRequestID"] = CHECKOUT_ID
    return body


def daraja_confirms(daraja) -> None:
    """Daraja's STK Push Query says the payment succeeded."""
    answer = fixture("query_success.json")
    answer["CheckoutRequestID"] = CHECKOUT_ID
    daraja.post(QUERY_URL, json=answer)


def queries(daraja) -> int:
    return len([call for call in daraja.calls if call.request.url == QUERY_URL])


def receipts() -> list:
    return [m for m in mail.outbox if "wanjiru@example.org" in m.to]


def redis_test(test):
    """Against the local Redis, with committed data (the worker reads what the request committed)."""
    for mark in (needs_redis, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("mpesa_settings")):
        test = mark(test)
    return test


@redis_test
def test_a_callback_is_verified_by_an_rq_worker_and_credited_once(rq_queue, ack, payment, daraja):
    daraja_confirms(daraja)

    assert post_json(CALLBACK_PATH, success_body()) == (200, ACK)

    # Answered, stored, and one task waits in Redis (the verification, or the whole callback): nothing ran yet.
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.RECEIVED
    assert rq_queue.queue.count == 1
    assert queries(daraja) == 0 and credited(payment) == 0

    # The verification (inside process_callback under "stored"), then the receipt it enqueued on commit (its PDF
    # rendered as the email is sent).
    assert rq_queue.work() == jobs(ack, NOTIFY, VERIFY)

    payment.refresh_from_db()
    event.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert credited(payment) == Decimal("10.00")
    assert Allocation.objects.filter(donation=payment.donation).count() == 1
    assert event.status == CallbackEvent.Status.PROCESSED
    assert queries(daraja) == 1
    assert len(receipts()) == 1
    verifier = (dispatch.callbacks_drain, DRAIN) if ack == "stored" else (callbacks.verify_callback, VERIFY)
    (job_id,) = [i for i in rq_queue.queue.finished_job_registry.get_job_ids() if rq_queue.func_name(i) == verifier[1]]
    verification = verifier[0].get_result(job_id)  # the result, read back from Redis
    said = "1 in 1 batches" if ack == "stored" else "accepted"
    assert verification.status == "SUCCESSFUL" and verification.return_value == said


@redis_test
def test_the_same_verification_enqueued_twice_credits_once(rq_queue, payment, daraja, settings):
    settings.CALLBACK_ACK = "handled"  # the request queues the verification itself
    daraja_confirms(daraja)
    assert post_json(CALLBACK_PATH, success_body()) == (200, ACK)
    event = CallbackEvent.objects.get()
    again = callbacks.verify_callback.enqueue(event.pk)  # a replay, a sweeper run, a job delivered twice
    assert rq_queue.queue.count == 2

    assert rq_queue.work() == [NOTIFY, VERIFY, VERIFY]  # two verifications, one receipt

    assert credited(payment) == Decimal("10.00")
    assert Allocation.objects.filter(donation=payment.donation).count() == 1
    assert queries(daraja) == 1  # the second found the event settled and asked nobody
    assert len(receipts()) == 1
    assert callbacks.verify_callback.get_result(again.id).return_value == "duplicate"
    event.refresh_from_db()
    assert event.status == CallbackEvent.Status.PROCESSED


@contextmanager
def redis_down(settings, *, cache_too: bool) -> Iterator[None]:
    """The task queue's Redis (and, when one Redis serves both, the cache's) refuses connections; back on exit."""
    working_queues, working_caches = settings.RQ_QUEUES, settings.CACHES
    settings.RQ_QUEUES = {name: {"URL": CLOSED_PORT_URL} for name in working_queues}
    if cache_too:
        settings.CACHES = {
            "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CLOSED_PORT_URL}
        }
    try:
        yield
    finally:
        settings.RQ_QUEUES, settings.CACHES = working_queues, working_caches


@pytest.mark.parametrize("cache_too", [False, True], ids=["queue-down", "queue-and-cache-down"])
@redis_test
def test_redis_down_at_enqueue_the_callback_is_stored_answered_and_swept_later(
    rq_queue, ack, payment, daraja, settings, cache_too
):
    daraja_confirms(daraja)
    with redis_down(settings, cache_too=cache_too):
        assert post_json(CALLBACK_PATH, success_body()) == (200, ACK)

        # Stored and answered; nothing queued, nothing credited, and the event is due for the sweeper. (Where the
        # enqueue's ConnectionError reaches callback_handle's boundary the event is `failed`, retried with
        # backoff; where the enqueue is guarded it stays `received`, due after CALLBACK_RETRY_GRACE_SECONDS.)
        event = CallbackEvent.objects.get()
        assert event.status in (CallbackEvent.Status.RECEIVED, CallbackEvent.Status.FAILED)
        assert event.next_attempt_at is not None
        assert credited(payment) == 0 and queries(daraja) == 0
        assert callbacks_sweep().examined == 0  # not due yet, and would need the queue anyway

    assert rq_queue.queue.count == 0
    CallbackEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    report = callbacks_sweep()  # reconcile_payments' inbox sweep, once the event's next attempt is due
    assert report.examined == 1 and rq_queue.queue.count == 1  # the sweep ran the handler: verification queued

    assert rq_queue.work() == [NOTIFY, VERIFY]  # the sweeper runs the handler itself, whatever the ack

    event.refresh_from_db()
    assert event.status == CallbackEvent.Status.PROCESSED
    assert credited(payment) == Decimal("10.00")
    assert Allocation.objects.filter(donation=payment.donation).count() == 1
    assert queries(daraja) == 1 and len(receipts()) == 1
    assert callbacks_sweep().examined == 0  # settled: nothing left for the next sweep


@redis_test
@pytest.mark.usefixtures("azampay_settings")
def test_redis_down_an_authenticated_callback_is_answered_and_credited_once(rq_queue, ack, settings):
    """AzamPay's authenticated success is applied without a status query: in the request ("handled", where only
    its receipt needs the queue, and is lost while Redis is down: see the README) or, "stored", by the sweeper
    once the queue could not take it. Answered either way, credited once, never re-credited."""
    payment = PaymentFactory(donation__amount=Decimal("5000"), donation__patient__funding_goal=Decimal("1000000"))
    with redis_down(settings, cache_too=False):
        assert post_json(AZAMPAY_CALLBACK_URL, callback_body(payment)) == (200, AZAMPAY_ACK)
        assert credited(payment) == (Decimal("5000") if ack == "handled" else 0)

    CallbackEvent.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    callbacks_sweep()  # the event was left due (stored), or failed after the credit (handled): a re-run is safe
    rq_queue.work()
    assert CallbackEvent.objects.get().is_settled
    assert credited(payment) == Decimal("5000")
    assert Allocation.objects.filter(donation=payment.donation).count() == 1
    assert callbacks_sweep().examined == 0


# --- settings and deploy checks ---------------------------------------------------------------------------


def _deploy_warnings(settings, **overrides) -> list[checks.CheckMessage]:
    for name, value in overrides.items():
        setattr(settings, name, value)
    return [m for m in payment_checks.task_queue(None) if m.id.startswith("payments.W04")]


def test_deploy_check_warns_when_rq_has_no_redis(settings):
    found = _deploy_warnings(settings, TASKS_BACKEND="rq", TASKS_REDIS_URL="")
    assert [m.id for m in found] == ["payments.W040"]


def test_deploy_check_warns_when_the_queue_shares_the_cache_database(settings):
    shared = "redis://10.0.0.5:6379/1"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": shared}}
    found = _deploy_warnings(settings, TASKS_BACKEND="rq", TASKS_REDIS_URL=shared)
    assert [m.id for m in found] == ["payments.W041"]
    assert not _deploy_warnings(settings, TASKS_REDIS_URL="redis://10.0.0.5:6379/2")  # another database: fine
    assert not _deploy_warnings(settings, TASKS_BACKEND="database", TASKS_REDIS_URL="")  # not using Redis


def _production_env(tmp_path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "AZAMPAY", "TASKS"))}
    for line in (ROOT / ".env.production.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env[key] = value.strip("'\"")
    env.pop("PAYMENTS_SANDBOX_URL", None)
    env.update(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "LOG_DIR": str(tmp_path),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            **extra,
        }
    )
    return env


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


SHOW_SETTINGS = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'TASKS': s.TASKS, 'RQ_QUEUES': s.RQ_QUEUES, 'TASKS_REDIS_URL': s.TASKS_REDIS_URL, "
    "'django_rq': 'django_rq' in s.INSTALLED_APPS}))"
)


def _settings_of(env: dict[str, str]) -> dict:
    """The settings config/settings.py makes of this environment (in a process of its own)."""
    result = subprocess.run(
        [sys.executable, "-c", SHOW_SETTINGS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_rq_production_settings_pass_check_deploy(tmp_path):
    """The documented rq alternative: django_rq installed, its queue configured, the Redis URL from the env."""
    env = _production_env(
        tmp_path, TASKS_BACKEND="rq", CACHE_URL="redis://127.0.0.1:6379/1", TASKS_REDIS_URL="redis://127.0.0.1:6379/2"
    )
    result = _manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _settings_of(env) == {
        "TASKS": {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}},
        "RQ_QUEUES": {"default": {"URL": "redis://127.0.0.1:6379/2", "DEFAULT_TIMEOUT": 300}},
        "TASKS_REDIS_URL": "redis://127.0.0.1:6379/2",
        "django_rq": True,
    }


def test_rq_without_any_redis_url_fails_check_deploy(tmp_path):
    env = _production_env(tmp_path, TASKS_BACKEND="rq", CACHE_URL="locmemcache://")
    result = _manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0 and "payments.W040" in result.stdout + result.stderr


def test_the_queue_defaults_to_the_cache_redis_and_check_deploy_says_so(tmp_path):
    env = _production_env(tmp_path, TASKS_BACKEND="rq", CACHE_URL="redis://127.0.0.1:6379/1")
    assert _settings_of(env)["TASKS_REDIS_URL"] == "redis://127.0.0.1:6379/1"
    result = _manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0 and "payments.W041" in result.stdout + result.stderr


def test_the_other_backends_do_not_install_django_rq(tmp_path):
    assert _settings_of(_production_env(tmp_path))["django_rq"] is False  # the example's TASKS_BACKEND=database


def test_rqworker_runs_jobs_in_its_own_process_unless_told_otherwise(tmp_path):
    """`manage.py rqworker` builds its worker with django_rq.workers.get_worker: SimpleWorker by default (no fork
    per job), the forking Worker when RQ_WORKER_CLASS names it."""
    show = (
        "import django; django.setup(); from django_rq.workers import get_worker; "
        "print(type(get_worker('default')).__name__)"
    )
    for extra, expected in (({}, "SimpleWorker"), ({"RQ_WORKER_CLASS": "rq.worker.Worker"}, "Worker")):
        env = _production_env(
            tmp_path, TASKS_BACKEND="rq", CACHE_URL="redis://127.0.0.1:6379/1", TASKS_REDIS_URL=REDIS_URL, **extra
        )
        result = subprocess.run(
            [sys.executable, "-c", show], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().splitlines()[-1] == expected
