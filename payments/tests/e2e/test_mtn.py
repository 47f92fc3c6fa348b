"""MTN MoMo end to end, what is its own: MTN's own sandbox numbers (46733123450–54), callbacks by PUT (POST
accepted too), a status GET that answers 404 right after the 202. The outcome table, forged and unconfirmed
callbacks, the payout and the partial refund are proven for it with every provider in test_pipeline.py (its
facts: drivers.py, `Mtn`)."""

import json
from decimal import Decimal

import pytest
import requests

from payments.models import CallbackEvent, Payment
from payments.providers.mtn.codes import NOT_VISIBLE_TEXT
from payments.sandbox.outcomes import Result
from payments.services.payments import payment_confirm
from payments.services.reconcile import payments_reconcile
from payments.tests.e2e.support import status_of, wait_for_status, wait_until
from payments.tests.helpers import credited

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PROVIDER = "mtn"


# --- MTN's own sandbox numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "status", "reason"),
    [
        ("46733123450", "failed", "INTERNAL_PROCESSING_ERROR"),
        ("46733123451", "cancelled", "APPROVAL_REJECTED"),
        ("46733123452", "expired", "EXPIRED"),
    ],
)
def test_mtns_sandbox_numbers_that_fail(live_server, driver, sandbox, patient, phone, status, reason):
    created = driver.donate(live_server, phone=phone)
    assert wait_for_status(live_server, created["reference"])["status"] == status
    assert reason in Payment.objects.get().failure_reason
    assert driver.charge(sandbox, created)["msisdn"] == phone
    assert credited(patient) == 0


def test_mtns_pending_number_stays_pending_whatever_we_ask(live_server, driver, sandbox, patient):
    created = driver.donate(live_server, phone="46733123453")
    reference = created["reference"]
    for _ in range(2):
        report = payments_reconcile(reference=reference)
        assert (report.checked, report.changed, report.still_pending) == (1, 0, 1)
    assert wait_until(lambda: driver.charge(sandbox, created)["extra"]["queries"] >= 2)
    assert status_of(live_server, reference)["status"] == "pending"
    assert driver.charge(sandbox, created)["deliveries"] == []
    assert Payment.objects.get().status == Payment.Status.PENDING
    assert credited(patient) == 0


def test_mtns_delayed_number_is_created_then_successful(live_server, driver, sandbox, patient):
    created = driver.donate(live_server, phone="46733123454")
    reference = created["reference"]
    # MTN says CREATED for ~2.5 s (25 s unscaled): pending, never a failure.
    report = payments_reconcile(reference=reference)
    assert (report.checked, report.still_pending) == (1, 1)
    assert status_of(live_server, reference)["status"] == "pending"
    assert wait_for_status(live_server, reference, seconds=20)["status"] == "completed"
    assert len(driver.deliveries(sandbox, created, 1)) == 1
    assert credited(patient) == Decimal(driver.amount)


# --- the rail's quirks --------------------------------------------------------------------------------------


def test_callbacks_come_by_put_post_is_accepted_too_and_get_is_refused(live_server, driver, sandbox, patient):
    created = driver.donate(live_server, "05")  # no callback of the simulator's own: we deliver it ourselves
    assert wait_until(lambda: driver.decided(sandbox, created))
    simulated = sandbox.store.get_charge("mtn", created["payment"]["provider_reference"])
    body = json.dumps(sandbox.simulators["mtn"].status_body(simulated, Result.SUCCESS)).encode()
    url = driver.charge(sandbox, created)["extra"]["callback_url"]  # the X-Callback-Url with the payment's secret
    headers = {"Content-Type": "application/json"}

    put = requests.put(url, data=body, headers=headers, allow_redirects=False, timeout=10)
    assert (put.status_code, put.json()) == (200, driver.ack)
    assert status_of(live_server, created["reference"])["status"] == "completed"
    post = requests.post(url, data=body, headers=headers, allow_redirects=False, timeout=10)
    assert (post.status_code, post.json()) == (200, driver.ack)
    refused = requests.get(url, allow_redirects=False, timeout=10)
    assert refused.status_code == 405 and set(refused.headers["Allow"].split(", ")) == {"POST", "PUT"}

    assert credited(patient) == Decimal(driver.amount)
    events = list(CallbackEvent.objects.filter(provider="mtn").order_by("pk").values_list("status", flat=True))
    assert events == [CallbackEvent.Status.PROCESSED, CallbackEvent.Status.DUPLICATE]


def test_status_get_404_right_after_the_202_is_pending_not_a_failure(live_server, driver, settings, patient):
    # Twenty times slower than real time: MTN's GET answers 404 for 10 s after the 202 (0.5 s unscaled).
    with driver.running(live_server, settings, time_scale=20.0) as server:
        created = driver.donate(live_server, "00")
        payment = Payment.objects.get()
        result, outcome = payment_confirm(payment_id=payment.pk)
        assert result is not None and (result.status, result.message) == ("pending", NOT_VISIBLE_TEXT)
        assert not outcome.changed
        payment.refresh_from_db()
        assert payment.status == Payment.Status.PENDING and payment.failure_reason == ""
        assert status_of(live_server, created["reference"])["status"] == "pending"
        assert driver.charge(server, created)["extra"]["queries"] == 1
