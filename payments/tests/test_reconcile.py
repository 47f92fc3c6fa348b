"""Reconciliation: ask AzamPay about due pending payments on the backoff ladder; re-run failed inbox events."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from donor.models import Allocation, Donation
from payments.models import CallbackEvent, Payment
from payments.services.reconcile import payments_reconcile
from payments.tests.azampay_fakes import API, PASSWORD, fixture
from payments.tests.factories import PaymentFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("azampay_settings")]

STATUS_URL = f"{API}/azampay/gettransactionstatus"
CALLBACK_URL = "/api/v1.0/donors/payment/azampay/callback/"
PENDING = {"data": "Transaction pending.", "message": "Request successful.", "success": True, "statusCode": 200}


def due_payment(**fields) -> Payment:
    return PaymentFactory(
        next_check_at=timezone.now() - timedelta(seconds=5),
        donation__patient__funding_goal=Decimal("1000000"),
        **fields,
    )


def credited(payment: Payment) -> Decimal:
    payment.donation.patient.refresh_from_db()
    return payment.donation.patient.funding_received


def status_calls(mock) -> int:
    return len([c for c in mock.calls if c.request.url.startswith(STATUS_URL)])


def test_due_payment_the_provider_calls_successful_is_credited(azam):
    azam.get(STATUS_URL, json=fixture("status_success.json"))
    payment = due_payment()
    report = payments_reconcile()

    assert (report.checked, report.changed) == (1, 1)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.next_check_at is None
    assert Donation.objects.get(pk=payment.donation_id).status == Donation.Status.COMPLETED
    assert credited(payment) == Decimal("5000")
    assert Allocation.objects.filter(donation=payment.donation).count() == 1


def test_running_reconciliation_twice_credits_nothing_more(azam):
    azam.get(STATUS_URL, json=fixture("status_success.json"))
    payment = due_payment()
    payments_reconcile()
    second = payments_reconcile()

    assert (second.checked, second.changed, second.replayed) == (0, 0, 0)
    assert status_calls(azam) == 1
    assert credited(payment) == Decimal("5000")
    assert Allocation.objects.filter(donation=payment.donation).count() == 1


def test_payment_not_yet_due_is_not_asked_about(azam):
    azam.get(STATUS_URL, json=fixture("status_success.json"))
    payment = PaymentFactory(next_check_at=timezone.now() + timedelta(minutes=5))
    report = payments_reconcile()

    assert report.checked == 0
    assert status_calls(azam) == 0
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING


def test_finished_payments_are_not_asked_about(azam):
    azam.get(STATUS_URL, json=fixture("status_success.json"))
    for status in (Payment.Status.SUCCEEDED, Payment.Status.FAILED, Payment.Status.EXPIRED):
        due_payment(status=status)
    assert payments_reconcile().checked == 0
    assert status_calls(azam) == 0


@pytest.mark.parametrize(("check_count", "rung_seconds"), [(0, 120), (1, 600), (3, 6 * 3600), (9, 24 * 3600)])
def test_still_pending_payment_climbs_the_backoff_ladder(azam, settings, check_count, rung_seconds):
    assert settings.RECONCILE_LADDER_SECONDS == [30, 120, 600, 3600, 6 * 3600, 24 * 3600]
    azam.get(STATUS_URL, json=PENDING)
    payment = due_payment(check_count=check_count)
    before = timezone.now()
    report = payments_reconcile()

    assert (report.checked, report.changed, report.still_pending) == (1, 0, 1)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert payment.check_count == check_count + 1
    assert payment.last_checked_at >= before
    expected = before + timedelta(seconds=rung_seconds)
    assert expected - timedelta(seconds=5) <= payment.next_check_at <= expected + timedelta(seconds=5)
    assert credited(payment) == 0


def test_provider_unreachable_leaves_the_payment_pending_on_the_ladder(azam):
    azam.get(STATUS_URL, status=503)
    payment = due_payment()
    payments_reconcile()

    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert payment.check_count == 1
    assert payment.next_check_at > timezone.now()


def test_payment_older_than_the_expiry_is_expired_while_the_provider_still_says_pending(azam, settings):
    azam.get(STATUS_URL, json=PENDING)
    payment = due_payment()
    long_ago = timezone.now() - timedelta(seconds=settings.PAYMENT_EXPIRY_SECONDS + 60)
    Payment.objects.filter(pk=payment.pk).update(created_at=long_ago)
    report = payments_reconcile()

    assert report.changed == 1
    payment.refresh_from_db()
    assert payment.status == Payment.Status.EXPIRED
    assert payment.next_check_at is None
    assert Donation.objects.get(pk=payment.donation_id).status == Donation.Status.EXPIRED
    assert credited(payment) == 0


def test_old_payment_the_provider_calls_successful_is_credited_not_expired(azam, settings):
    azam.get(STATUS_URL, json=fixture("status_success_array.json"))
    payment = due_payment()
    long_ago = timezone.now() - timedelta(seconds=settings.PAYMENT_EXPIRY_SECONDS + 60)
    Payment.objects.filter(pk=payment.pk).update(created_at=long_ago)
    payments_reconcile()

    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert credited(payment) == Decimal("5000")


def test_young_pending_payment_is_not_expired(azam):
    azam.get(STATUS_URL, json=PENDING)
    payment = due_payment()
    payments_reconcile()
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING


def test_failed_inbox_events_are_rerun_and_credit_once(client, monkeypatch, azam):
    payment = PaymentFactory(donation__patient__funding_goal=Decimal("1000000"))
    data = fixture("callback_real_sandbox.json") | {
        "utilityref": payment.reference,
        "reference": payment.provider_reference,
        "externalreference": payment.provider_reference,
        "transid": payment.provider_reference,
        "amount": "5000",
        "password": PASSWORD,
    }

    def crash(**kwargs):
        raise RuntimeError("lock wait timeout")

    with monkeypatch.context() as patch:
        patch.setattr("payments.services.callbacks.payment_apply_result", crash)
        client.post(CALLBACK_URL, data=json.dumps(data).encode(), content_type="application/json")
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.FAILED
    assert payments_reconcile().replayed == 0  # its next attempt (after 30 s) is not due yet

    CallbackEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    report = payments_reconcile()
    assert report.replayed == 1
    event.refresh_from_db()
    assert event.status == CallbackEvent.Status.PROCESSED
    assert credited(payment) == Decimal("5000")

    again = payments_reconcile()
    assert again.replayed == 0
    assert credited(payment) == Decimal("5000")
    assert Allocation.objects.filter(donation=payment.donation).count() == 1


def test_payment_stuck_in_created_is_expired_by_reconciliation(azam, settings):
    payment = PaymentFactory(status=Payment.Status.CREATED, next_check_at=None, provider_reference=None)
    long_ago = timezone.now() - timedelta(seconds=settings.PAYMENT_EXPIRY_SECONDS + 60)
    Payment.objects.filter(pk=payment.pk).update(created_at=long_ago)
    report = payments_reconcile()

    assert report.checked == 1
    payment.refresh_from_db()
    assert payment.status == Payment.Status.EXPIRED
    assert Donation.objects.get(pk=payment.donation_id).status == Donation.Status.EXPIRED
