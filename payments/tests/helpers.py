"""Small helpers the payments tests share: post a provider's callback, read what a patient was credited, start
threads at the same instant (the MariaDB concurrency tests)."""

import json
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.db import connection
from django.test import Client, TestCase


def encode(body: Any) -> bytes:
    """A body as a provider sends it: bytes as given, anything else as JSON."""
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def post(path: str, body: Any, *, run_on_commit: bool = False) -> tuple[int, dict]:
    """POST a callback body through the real URL; (status, JSON answer). Never a redirect: providers do not
    follow one. `run_on_commit` also runs what the request left for after its commit (the verify task)."""
    client = Client()
    if run_on_commit:
        with TestCase.captureOnCommitCallbacks(execute=True):
            response = client.post(path, data=encode(body), content_type="application/json")
    else:
        response = client.post(path, data=encode(body), content_type="application/json")
    assert "Location" not in response
    return response.status_code, response.json()


def credited(to: Any) -> Decimal:
    """What a patient (or the patient of a payment) has been credited, fresh from the database."""
    patient = to.donation.patient if hasattr(to, "donation") else to
    patient.refresh_from_db()
    return patient.funding_received


def run_together(targets: list[Callable[[], Any]]) -> list:
    """Start every target at the same instant (a barrier), each in a thread with its own database connection;
    their results in order, or the first error re-raised here."""
    barrier = threading.Barrier(len(targets))
    results: list = [None] * len(targets)
    errors: list[BaseException] = []

    def worker(index: int, target: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results[index] = target()
        except BaseException as exc:  # collected and re-raised below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a thread is still running after 60 s"
    assert not errors, errors
    return results


def or_refusal(call: Callable[[], Any]) -> Callable[[], Any]:
    """A target for run_together: what `call` returns, or the message of the MoneyOutRefused it raises."""
    from payments.services.money_out import MoneyOutRefused

    def run() -> Any:
        try:
            return call()
        except MoneyOutRefused as refused:
            return refused.message

    return run


def poster(path: str, body: Any) -> Callable[[], tuple[int, dict]]:
    """A thunk that POSTs the body to the path with a test client of its own (for run_together)."""
    data = encode(body)

    def send() -> tuple[int, dict]:
        response = Client().post(path, data=data, content_type="application/json")
        return response.status_code, response.json()

    return send


def worker() -> None:
    """django-tasks-db's worker loop as `db_worker --batch` runs it, until the queue is empty (the command itself
    installs signal handlers, which only the main thread may do)."""
    from django_tasks_db.management.commands.db_worker import Worker

    Worker(queue_names=["default"], interval=0, batch=True, backend_name="default", startup_delay=False,
           max_tasks=None, worker_id=f"test-{threading.get_ident()}", excluded_queue_names=[]).run()  # fmt: skip
