"""CALLBACK_ACK=stored: a callback is answered once it is durably in the inbox and applied by a task worker
(django-tasks-db's `db_worker` in batch mode); the sweeper finishes what a lost task leaves. The `at-once` cases
race copies, workers and the sweeper on a real MariaDB (many payments at once, a backlog with copies: test_drain.py).
"""

import json

import pytest
from django.core.management import call_command
from django_tasks_db.models import DBTaskResult

from donor.models import Allocation
from payments.models import CallbackEvent, Payment
from payments.services.dispatch import callbacks_sweep
from payments.tests.azampay_fakes import ACK, CALLBACK_URL, PASSWORD, callback_body
from payments.tests.factories import PaymentFactory
from payments.tests.helpers import credited, post, poster, run_together, worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("azampay_settings")]

DRAIN = "payments.services.dispatch.callbacks_drain"  # what a payment callback queues (CALLBACK_BATCH_SIZE > 1)


@pytest.fixture
def stored_ack(settings):
    settings.CALLBACK_ACK = "stored"
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


def run_worker() -> None:
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload")


@pytest.mark.parametrize("at_once", [False, pytest.param(True, marks=pytest.mark.mysql, id="at-once")])
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_copies_are_answered_once_stored_and_credited_once_by_the_worker(
    stored_ack, request, settings, signed, at_once
):
    """Unsigned, the callback is only a reason to ask: one queue hop, the drain asks the provider itself instead of
    queueing verify_callback. At once (MariaDB), twenty copies, half exact repeats (the inbox links them), half
    re-encoded (only the payment's row lock can tell), then three workers and the sweeper at once."""
    if not signed:
        request.getfixturevalue("no_callback_password")
        request.getfixturevalue("azam_says_paid")
        settings.CALLBACK_VERIFY_CONCURRENCY = 4 if at_once else 1  # asked in threads, or one after another
    payment = PaymentFactory()
    body = callback_body(payment, password=PASSWORD if signed else "")
    encoded_again = [json.dumps(json.loads(body), indent=i).encode() for i in range(10)]
    bodies = [body] * 10 + encoded_again if at_once else [body] * 3
    posts = [poster(CALLBACK_URL, copy) for copy in bodies]
    assert (run_together(posts) if at_once else [send() for send in posts]) == [(200, ACK)] * len(bodies)

    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING  # nothing applied in the requests
    # The original is not settled yet, so each copy is work to do, not a "duplicate" answered and forgotten; one
    # drain is queued for them all (coalesced; at once, each first caller may queue one). Each is due for the
    # sweeper should the task be lost.
    events = CallbackEvent.objects.order_by("pk")
    trust = "trusted" if signed else "unverified"
    assert {(event.status, event.trust) for event in events} == {(CallbackEvent.Status.RECEIVED, trust)}
    assert all(event.body_kept and PASSWORD not in event.body for event in events)  # redacted, judged on the raw bytes
    assert None not in {event.next_attempt_at for event in events}
    drains = DBTaskResult.objects.filter(task_path=DRAIN).count()
    assert drains == 1 or at_once

    if at_once:
        run_together([worker, worker, worker, lambda: callbacks_sweep(received_before=None)])
    else:
        run_worker()
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED and (payment.receipt or not signed)  # the query has none
    assert credited(payment) == payment.amount and Allocation.objects.count() == 1
    assert sorted(events.values_list("status", flat=True)) == ["ignored"] * (len(bodies) - 1) + ["processed"]
    assert set(events.values_list("next_attempt_at", flat=True)) == {None}
    assert not DBTaskResult.objects.filter(task_path="payments.services.callbacks.verify_callback").exists()
    assert at_once or DBTaskResult.objects.get(task_path=DRAIN).return_value == "3 in 1 batches"
    # once settled, a further copy is answered as a duplicate with no work queued
    assert post(CALLBACK_URL, body) == (200, ACK)
    assert DBTaskResult.objects.filter(task_path=DRAIN).count() == drains
    assert CallbackEvent.objects.order_by("-pk").first().status == CallbackEvent.Status.DUPLICATE


@pytest.mark.parametrize(
    ("password", "ours", "answer", "error"),
    [("guess", True, 401, "authentication"), (PASSWORD, False, 200, "unknown reference")],
    ids=["forged", "about-no-payment-of-ours"],
)
def test_a_forged_callback_is_refused_in_the_request_one_about_no_payment_of_ours_by_the_worker(
    stored_ack, password, ours, answer, error
):
    payment = PaymentFactory()
    if not ours:
        Payment.objects.filter(pk=payment.pk).update(reference="SOMEONE-ELSE", provider_reference="other")
    status, body = post(CALLBACK_URL, callback_body(payment, password=password))
    assert status == answer and (answer == 200 or body["code"] == "AUTH_REQUIRED")
    assert DBTaskResult.objects.exists() == (answer == 200)  # a forgery queues no work

    run_worker()
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REJECTED and error in event.error
    assert not Allocation.objects.exists() and Payment.objects.get(pk=payment.pk).status == Payment.Status.PENDING


def test_with_the_immediate_backend_stored_means_applied_in_the_request(settings):
    settings.CALLBACK_ACK = "stored"
    payment = PaymentFactory()
    assert post(CALLBACK_URL, callback_body(payment)) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED and credited(payment) == payment.amount
