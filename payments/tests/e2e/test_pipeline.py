"""What every provider proves end to end, written once and run for each provider's driver (drivers.py): the live
site, the provider's simulator in the running sandbox, real callbacks between them.

One test per row of docs/api.md's outcome table (the last two digits of the payer's phone number choose it):
a success credited once, on the word of the status query unless the rail is trusted; a failure and a cancel with
the provider's reason; no answer expires (the donor's refresh or the sweeper asks, as the provider does); a late
callback still completes; a lost one is found by reconciliation; three concurrent copies and a failure before
the success credit once. Then the callbacks we send ourselves (forged: 401; an unconfirmed success: not
credited while the provider says pending), the health page, payouts and refunds through maker-checker. Each
provider's own ways are in test_<code>.py.
"""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from django.core.management import call_command
from django.utils import timezone

from donor.models import Allocation, Donation
from patients.models import Patient
from patients.tests.factories import PatientFactory, TreatmentPartnerFactory
from payments.models import CallbackEvent, Payment, Payout, Refund
from payments.providers.registry import PROVIDER_CLASSES
from payments.sandbox.outcomes import Result
from payments.services.payouts import payout_approve, payout_request, payouts_reconcile
from payments.services.reconcile import payments_reconcile
from payments.services.refunds import RefundRefused, refund_approve, refund_check, refund_request
from payments.tests.e2e.drivers import DRIVERS, cases
from payments.tests.e2e.support import (
    refresh,
    sandbox_charge,
    sandbox_charges,
    status_of,
    wait_for_deliveries,
    wait_for_status,
    wait_until,
)
from payments.tests.helpers import credited
from payments.url_tokens import url_token_digest

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
EVERY = pytest.mark.parametrize("driver", list(DRIVERS), indirect=True)
PROCESSED = CallbackEvent.Status.PROCESSED


def test_every_registered_provider_has_an_e2e_driver():
    """A fifth provider is proven end to end by this suite from its first commit: its driver is all it needs."""
    assert set(PROVIDER_CLASSES) == set(DRIVERS), "add an E2eDriver for it to payments/tests/e2e/drivers.py"


def assert_credited_once(driver, patient, created: dict) -> None:
    assert credited(patient) == Decimal(driver.amount)
    assert Allocation.objects.filter(donation__reference=created["reference"]).count() == 1


def assert_copies_handled_once(driver) -> None:
    """One copy credits; a copy that arrived while the first was still being handled is handled too (the inbox
    never swallows a copy of an unsettled delivery) and finds it done ("ignored"); a later one is a plain
    "duplicate"."""
    statuses = sorted(CallbackEvent.objects.filter(provider=driver.code).values_list("status", flat=True))
    assert statuses.count(PROCESSED) == 1
    assert set(statuses) - {PROCESSED} <= {CallbackEvent.Status.DUPLICATE, "ignored"}


# --- the outcome table -------------------------------------------------------------------------------------


@EVERY
def test_success_is_credited_once_on_the_providers_word(live_server, driver, sandbox, patient):
    created = driver.donate(live_server, "00")
    assert created["next_action"]["type"] == "await_phone_confirmation"
    payment = Payment.objects.get()
    reference = created["payment"]["provider_reference"]
    assert reference == payment.provider_reference  # chosen before it left (Airtel: none)
    assert (reference or "").startswith(driver.reference_prefix)
    status = wait_for_status(live_server, created["reference"])
    assert status["status"] == "completed"
    charge = driver.charge(sandbox, created)
    assert status["transactionId"] == charge["transactionId"]
    if driver.reference_is_transaction:
        assert status["transactionId"] == reference
    assert status["receipt"] == driver.receipt(charge)
    assert (charge["msisdn"], charge["amount"], charge["currency"]) == (
        driver.msisdn(driver.phone("00")),
        driver.amount,
        driver.currency,
    )
    assert charge["externalId"] == driver.charge_reference(created["reference"])
    assert charge["extra"] | driver.charge_extra == charge["extra"]
    assert payment.external_id == driver.external_id(created["reference"])
    assert_credited_once(driver, patient, created)

    [delivery] = driver.deliveries(sandbox, created, 1)  # recorded once the site has answered it
    url = f"{live_server.url}{driver.callback_path}"
    if driver.callback_token:
        assert delivery["url"].startswith(url)
        token = delivery["url"].removeprefix(url).rstrip("/")
        # The payment keeps only a keyed digest of the secret it handed to the provider, never the secret.
        assert Payment.objects.get().callback_token_digest == url_token_digest(token) != token
    else:
        assert delivery["url"] == url
    assert delivery["http_status"] == 200 and json.loads(delivery["response"]) == driver.ack
    if driver.counts_queries:
        assert driver.charge(sandbox, created)["extra"]["queries"] >= 1  # the status query decided, not the callback
    event = CallbackEvent.objects.get(provider=driver.code)
    assert (event.trust, event.status) == (driver.trust, PROCESSED)
    assert event.kind == (driver.event_kind or event.kind)
    assert not set(driver.never_stored) & set(json.loads(event.body))


@EVERY
def test_insufficient_funds_fails_with_the_providers_reason(live_server, driver, sandbox, patient):
    status = wait_for_status(live_server, driver.donate(live_server, "01")["reference"])
    assert status["status"] == "failed"
    words, code = driver.insufficient
    assert words in status["status_reason"].lower()
    assert code in Payment.objects.get().failure_reason
    assert credited(patient) == 0


@EVERY
def test_cancelled_on_the_phone_with_the_providers_reason(live_server, driver, sandbox, patient):
    status = wait_for_status(live_server, driver.donate(live_server, "02")["reference"])
    assert status["status"] == "cancelled"
    assert driver.cancelled in Payment.objects.get().failure_reason
    assert credited(patient) == 0


@EVERY
def test_no_answer_expires_when_the_provider_times_out(live_server, driver, sandbox, patient, settings):
    settings.REFRESH_MIN_INTERVAL_SECONDS = 0  # let every refresh ask the provider (the simulator decides in ~3 s)
    settings.REFRESH_RATE_LIMIT_PER_MINUTE = 10_000
    created = driver.donate(live_server, "03")
    reference = created["reference"]
    if driver.expires_by == "reconcile":
        report = payments_reconcile(reference=reference)  # the prompt is still open
        assert (report.checked, report.still_pending) == (1, 1)
        assert status_of(live_server, reference)["status"] == "pending"

        def settled() -> dict | None:
            changed = driver.decided(sandbox, created) and payments_reconcile(reference=reference).changed == 1
            return status_of(live_server, reference) if changed else None
    else:
        # While the prompt is open the status query says pending (M-Pesa: both of its ways); never a failure.
        for _ in range(2):
            first = refresh(live_server, reference)
            assert first.status_code == 200 and first.json()["status"] == "pending"
        if driver.counts_queries:
            assert driver.charge(sandbox, created)["extra"]["queries"] >= 2

        def settled() -> dict | None:
            body = refresh(live_server, reference).json()
            return body if body["status"] != "pending" else None

    status = wait_until(settled, seconds=20, interval=0.3)
    assert status and status["status"] == "expired"
    assert driver.expired in Payment.objects.get().failure_reason
    assert driver.charge(sandbox, created)["deliveries"] == []  # no callback ever: only the status query knew
    assert credited(patient) == 0


@EVERY
def test_three_concurrent_callbacks_credit_once(live_server, driver, sandbox, patient):
    created = driver.donate(live_server, "04")
    assert wait_for_status(live_server, created["reference"])["status"] == "completed"
    deliveries = driver.deliveries(sandbox, created, 3)
    assert len(deliveries) == 3
    assert all(d["http_status"] == 200 and json.loads(d["response"]) == driver.ack for d in deliveries)
    assert wait_until(lambda: CallbackEvent.objects.filter(provider=driver.code).count() == 3)
    assert_credited_once(driver, patient, created)
    assert_copies_handled_once(driver)


@EVERY
def test_lost_callback_is_found_by_reconciliation(live_server, driver, sandbox, patient):
    created = driver.donate(live_server, "05")
    reference = created["reference"]
    assert wait_until(lambda: driver.decided(sandbox, created))  # the provider has the money; the site heard nothing
    assert status_of(live_server, reference)["status"] == "pending"
    Payment.objects.filter(reference=reference).update(next_check_at=timezone.now() - timedelta(seconds=1))
    report = payments_reconcile()
    assert report.changed == 1
    assert status_of(live_server, reference)["status"] == "completed"
    assert driver.charge(sandbox, created)["deliveries"] == []
    assert_credited_once(driver, patient, created)
    receipt = driver.receipt(driver.charge(sandbox, created)) if driver.receipt_by_query else ""
    assert Payment.objects.get().receipt == receipt


@EVERY
def test_late_callback_still_completes(live_server, driver, sandbox, patient):
    created = driver.donate(live_server, "06")
    reference = created["reference"]
    assert wait_until(lambda: driver.decided(sandbox, created))
    assert status_of(live_server, reference)["status"] == "pending"  # decided at the provider, the callback ~1 s away
    assert wait_for_status(live_server, reference, seconds=15)["status"] == "completed"
    assert len(driver.deliveries(sandbox, created, 1)) == 1
    assert_credited_once(driver, patient, created)


@EVERY
def test_failure_then_success_out_of_order_ends_completed_once(live_server, driver, sandbox, patient):
    created = driver.donate(live_server, "07")
    deliveries = driver.deliveries(sandbox, created, 2)
    assert [d["label"] for d in deliveries] == [Result.FAILED, Result.SUCCESS]
    assert all(d["http_status"] == 200 for d in deliveries)
    status = wait_for_status(live_server, created["reference"], until=lambda s: s == "completed", seconds=5)
    assert status["status"] == "completed"
    assert_credited_once(driver, patient, created)
    assert CallbackEvent.objects.filter(provider=driver.code, status=PROCESSED).count() == 1


# --- callbacks we send ourselves ------------------------------------------------------------------------------


def send(live_server, request: tuple[str, str, bytes]) -> requests.Response:
    method, path, body = request
    return getattr(requests, method)(
        live_server.url + path,
        data=body,
        headers={"Content-Type": "application/json"},
        allow_redirects=False,
        timeout=10,
    )


@pytest.mark.parametrize(("driver", "case"), cases("forged"), indirect=["driver"])
def test_forged_callback_is_401_and_credits_nothing(live_server, driver, sandbox, patient, case):
    created = driver.donate(live_server, "03")  # the payer never answers: the provider says pending
    response = send(live_server, driver.forged_request(created, case))
    assert response.status_code == 401 and response.json()["code"] == "AUTH_REQUIRED"
    event = CallbackEvent.objects.get(provider=driver.code)
    assert (event.status, event.trust) == (CallbackEvent.Status.REJECTED, "rejected")
    if driver.counts_queries:
        assert driver.charge(sandbox, created)["extra"]["queries"] == 0  # the provider was not even asked
    assert status_of(live_server, created["reference"])["status"] == "pending"
    assert credited(patient) == 0


@pytest.mark.parametrize(("driver", "case"), cases("unconfirmed"), indirect=["driver"])
def test_a_success_is_not_credited_while_the_provider_says_pending(live_server, driver, sandbox, patient, case):
    created = driver.donate(live_server, "03")
    response = send(live_server, driver.unconfirmed_request(created, case))
    assert (response.status_code, response.json()) == (200, driver.ack)  # nothing told to the sender
    event = CallbackEvent.objects.get(provider=driver.code)
    assert (event.status, event.trust) == (CallbackEvent.Status.REVIEW, "unverified")
    assert "pending" in event.error
    assert driver.charge(sandbox, created)["extra"]["queries"] == 1
    assert status_of(live_server, created["reference"])["status"] == "pending"
    assert credited(patient) == 0


@EVERY
def test_health_endpoint_shows_pending_payments_and_the_last_callback(live_server, driver, sandbox, patient):
    driver.donate(live_server, "03")
    for path in (f"/webhooks/{driver.code}/health/", f"/webhooks/{driver.code}/health"):
        body = requests.get(live_server.url + path, allow_redirects=False, timeout=10).json()
        assert (body["status"], body["provider"]) == ("healthy", driver.health_name)
        assert body["pending_payments"] == 1 and body["last_callback_at"] is None
        assert "timestamp" in body
    paid = driver.donate(live_server, "00")
    assert wait_for_status(live_server, paid["reference"])["status"] == "completed"
    body = requests.get(f"{live_server.url}/webhooks/{driver.code}/health/", timeout=10).json()
    assert body["pending_payments"] == 1
    assert body["last_callback_at"] is not None


# --- money going out: payouts and refunds through maker-checker ----------------------------------------------


@pytest.mark.parametrize(("driver", "case"), cases("payouts"), indirect=["driver"])
def test_payout_to_a_treatment_partner_ends_paid(live_server, driver, sandbox, maker, checker, case):
    partner = TreatmentPartnerFactory(payout_provider=driver.code, payout_msisdn=case.msisdn, country=driver.country)
    funded = PatientFactory(
        code=f"PAT-{driver.country}-30",
        currency=driver.currency,
        funding_goal=Decimal("20000"),
        funding_received=Decimal("20000"),
        status=Patient.Status.FULLY_FUNDED,
        treatment_partner=partner,
    )
    requested = payout_request(patient=funded, amount=Decimal("15000"), requested_by=maker)
    assert requested.status == Payout.Status.REQUESTED  # the maker's step sends nothing
    assert sandbox_charges(sandbox, driver.code) == []
    payout = payout_approve(payout_id=requested.pk, approved_by=checker)
    assert payout.status in case.approved  # a result callback may beat our own update
    [charge] = sandbox_charges(sandbox, driver.code, channel=driver.payout_channel)
    assert (charge["externalId"], charge["amount"]) == (driver.external_id(payout.reference), "15000")
    assert charge[driver.payout_key] == payout.provider_reference  # the provider's id, or our own
    assert charge["msisdn"] == driver.payout_msisdn(case.msisdn)
    if case.via == "reconcile":  # the payout's enquiry (its result callback lost, or none is sent)
        assert wait_until(
            lambda: sandbox_charge(sandbox, driver.code, channel=driver.payout_channel)["status"] != "pending"
        )
        Payout.objects.filter(pk=payout.pk).update(next_check_at=timezone.now() - timedelta(seconds=1))
        assert payouts_reconcile() == 1
    seen = set()

    def paid() -> bool:
        payout.refresh_from_db()
        seen.add(payout.status)
        return payout.status == Payout.Status.PAID

    assert wait_until(paid, seconds=10, interval=0.02) if case.via == "callback" else paid()
    assert case.first in seen | {""}
    charge = sandbox_charge(sandbox, driver.code, channel=driver.payout_channel)
    assert payout.receipt and payout.receipt in driver.payout_receipts(charge)
    assert not payout.needs_review
    funded.refresh_from_db()
    assert funded.status == Patient.Status.IN_TREATMENT
    events = CallbackEvent.objects.filter(provider=driver.code)
    if case.via != "callback":
        assert charge["deliveries"] == [] and not events.exists()
    elif driver.payout_callback_path:
        # The sandbox records a delivery once our answer reaches it, which can be a moment after the payout is paid.
        [delivery] = wait_for_deliveries(sandbox, driver.code, 1, channel=driver.payout_channel)
        assert delivery["url"] == f"{live_server.url}{driver.payout_callback_path}"
        assert json.loads(delivery["response"]) == driver.ack
        assert [e.status for e in events.filter(kind="disbursement")] == [PROCESSED]


@pytest.mark.parametrize(("driver", "case"), cases("refunds"), indirect=["driver"])
def test_refund_through_maker_checker_reverses_the_ledger(
    live_server, driver, sandbox, patient, refund_maker, refund_checker, case
):
    created = driver.donate(live_server, "00")
    assert wait_for_status(live_server, created["reference"])["status"] == "completed"
    donation = Donation.objects.get(reference=created["reference"])
    payment = Payment.objects.get()
    amount, refunded_amount = Decimal(driver.amount), Decimal(case.amount)
    if case.whole_only:
        with pytest.raises(RefundRefused, match=case.whole_only):
            refund_check(donation=donation, amount=Decimal("2000"), requested_by=refund_maker)
    requested = refund_request(
        donation=donation, amount=refunded_amount, reason="Paid twice", requested_by=refund_maker
    )
    refund = refund_approve(refund_id=requested.pk, approved_by=refund_checker)
    if case.at_once:  # the provider's answer is the result: no person needs to confirm it
        assert refund.status == Refund.Status.REFUNDED
    else:
        assert refund.status in (Refund.Status.SENT, Refund.Status.REFUNDED)

        def refunded() -> bool:
            refund.refresh_from_db()
            return refund.status == Refund.Status.REFUNDED

        assert wait_until(refunded, seconds=10)
    assert not refund.needs_review
    [simulated] = sandbox_charges(sandbox, driver.code, channel="refund")
    assert simulated["transactionId"] == refund.provider_reference  # the provider's (or our) id of the refund
    assert simulated["amount"] == case.amount
    named, refunded_payment = driver.refund_target(simulated, payment)
    assert named == refunded_payment
    assert refund.receipt  # which id it holds: payments/tests/drivers.py, e.g. MtnRefund (MTN's receipt is dropped)
    if case.at_once:
        assert refund.receipt == refund.provider_reference
    if case.callback_path:
        [delivery] = wait_for_deliveries(sandbox, driver.code, 1, channel="refund")
        assert delivery["url"] == f"{live_server.url}{case.callback_path}" and delivery["http_status"] == 200
        assert CallbackEvent.objects.get(provider=driver.code, kind="refund").status == PROCESSED

    donation.refresh_from_db()
    if refunded_amount == amount:
        assert donation.status == Donation.Status.REFUNDED
        assert status_of(live_server, donation.reference)["status"] == "refunded"
    else:  # partly refunded: still a gift of what is left
        assert donation.status == Donation.Status.COMPLETED
        assert f"{driver.currency} {refunded_amount:,}" in donation.status_reason
        assert "refunded" in donation.status_reason
    amounts = sorted(Allocation.objects.filter(donation=donation).values_list("amount", flat=True))
    assert amounts == sorted([-refunded_amount, amount])
    assert credited(patient) == amount - refunded_amount
    call_command("verify_ledger")  # exits 1 (SystemExit) on drift
