"""Refused callbacks arriving at once against a real MariaDB/MySQL server: each is counted once for its client
(the first ones race to create the client's row of the day), and none keeps its body. Skipped on SQLite."""

import pytest

from payments.models import CallbackEvent, CallbackRefusal
from payments.tests.azampay_fakes import CALLBACK_URL, callback_body
from payments.tests.factories import PaymentFactory
from payments.tests.helpers import poster, run_together

pytestmark = [pytest.mark.mysql, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("azampay_settings")]

THREADS = 20


def test_twenty_forged_callbacks_at_once_are_each_counted_and_none_keeps_its_body():
    body = callback_body(PaymentFactory(), password="guessed-password", padding="x" * 60_000)
    answers = run_together([poster(CALLBACK_URL, body)] * THREADS)

    assert [status for status, _ in answers] == [401] * THREADS
    assert CallbackEvent.objects.count() == THREADS
    assert not CallbackEvent.objects.filter(body_kept=True).exists()
    assert sum(len(event.body) for event in CallbackEvent.objects.all()) == 0
    refusal = CallbackRefusal.objects.get()
    assert (refusal.count, refusal.bytes) == (THREADS, THREADS * len(body))
