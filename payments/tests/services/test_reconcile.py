"""Reconciliation: ask the provider about due pending payments on the backoff ladder (every provider, through its
driver in payments/tests/drivers.py, for what they share, the ladder included); never give up silently; the
operator's command and the donor's refresh button. Its re-run of open inbox events is test_inbox.py's, beside the
sweeper's."""

from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from django.core.management import CommandError, call_command
from django.utils import timezone

from donor.models import Allocation, Donation
from payments.models import CallbackEvent, Payment
from payments.services.payments import payment_confirm
from payments.services.reconcile import payments_reconcile
from payments.tests.azampay_fakes import STATUS_URL, fixture
from payments.tests.drivers import cases
from payments.tests.factories import PaymentFactory
from payments.tests.helpers import credited

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("azampay_settings")]

PENDING = {"data": "Transaction pending.", "message": "Request successful.", "success": True, "statusCode": 200}
P = Payment.Status


def due(payment: Payment, **fields) -> Payment:
    Payment.objects.filter(pk=payment.pk).update(**{"next_check_at": timezone.now() - timedelta(seconds=5), **fields})
    payment.refresh_from_db()
    return payment


def due_payment(**fields) -> Payment:
    return due(PaymentFactory(donation__patient__funding_goal=Decimal("1000000")), **fields)


SETTLED = cases(lambda d: {"paid": ("", P.SUCCEEDED, ""), **{f"{c[1]}-{i}": c for i, c in enumerate(d.failed)}})


@pytest.mark.parametrize(("rail", "answer"), SETTLED, indirect=["rail"])
def test_a_due_payment_the_provider_calls_successful_or_failed_is_settled_once_however_often_it_runs(rail, answer):
    name, status, reason = answer  # failed: given up with its reason
    payment = due(rail.payment())
    rail.answer(name) if name else rail.says_paid(payment)
    report = payments_reconcile()

    assert (report.checked, report.changed) == (1, 1)
    payment.refresh_from_db()
    assert payment.status == status and reason in payment.failure_reason and payment.next_check_at is None
    assert Donation.objects.get(pk=payment.donation_id).status == ("completed" if status == P.SUCCEEDED else status)
    paid = rail.amount if status == P.SUCCEEDED else 0
    assert credited(payment) == paid

    second = payments_reconcile()
    assert (second.checked, second.changed, second.replayed) == (0, 0, 0)
    assert rail.asked() == 1
    assert credited(payment) == paid
    assert Allocation.objects.filter(donation=payment.donation).count() == (1 if paid else 0)


@pytest.mark.parametrize(
    "fields",
    [{"next_check_at": timezone.now() + timedelta(1)}, *({"status": s} for s in ("succeeded", "failed", "expired"))],
    ids=["not-yet-due", "succeeded", "failed", "expired"],
)
def test_payments_not_due_or_finished_are_not_asked_about(azam, fields):
    asked = azam.get(STATUS_URL, json=fixture("status_success.json"))
    payment = due_payment(**fields)
    assert payments_reconcile().checked == 0
    assert asked.call_count == 0
    payment.refresh_from_db()
    assert payment.status == fields.get("status", P.PENDING)


def waiting(d) -> dict[str, tuple[str, dict]]:
    """A provider's "not yet" status answer and its far side failing, as (fixture name, changes)."""
    first = {v: (name, {"status": status}) for name, status, v in reversed(d.unsure)}
    return {"still-pending": first.get(CallbackEvent.Status.REVIEW, d.pending),
            "unreachable": first.get(CallbackEvent.Status.FAILED, d.down)}  # fmt: skip


@pytest.mark.parametrize(("check_count", "rung_seconds"), [(0, 120), (1, 600), (3, 6 * 3600), (9, 24 * 3600)])
@pytest.mark.parametrize(("rail", "answer"), cases(waiting), indirect=["rail"])
def test_a_payment_still_pending_or_whose_provider_is_unreachable_climbs_the_backoff_ladder(
    rail, settings, answer, check_count, rung_seconds
):
    assert settings.RECONCILE_LADDER_SECONDS == [30, 120, 600, 3600, 6 * 3600, 24 * 3600]
    name, changes = answer
    rail.answer(name, **changes)
    payment = due(rail.payment(), check_count=check_count)
    before = timezone.now()
    report = payments_reconcile()

    assert (report.checked, report.changed, report.still_pending) == (1, 0, 1)
    payment.refresh_from_db()
    assert payment.status == P.PENDING  # young: not expired either
    assert payment.check_count == check_count + 1
    assert payment.last_checked_at >= before
    expected = before + timedelta(seconds=rung_seconds)
    assert expected - timedelta(seconds=5) <= payment.next_check_at <= expected + timedelta(seconds=5)
    assert credited(payment) == 0
    assert rail.asked() == 1 or (rail.code, name) == ("azampay", "")  # its bare 503 is asked again at once


@pytest.mark.parametrize(
    ("answer", "status", "fields"),
    [({"json": PENDING}, P.EXPIRED, {}), ({"json": fixture("status_success_array.json")}, P.SUCCEEDED, {}),
     ({"body": requests.ConnectionError("down")}, P.EXPIRED, {}),
     ({"json": PENDING}, P.EXPIRED, {"status": P.CREATED, "next_check_at": None, "provider_reference": None})],
    ids=["still-pending", "successful", "unreachable", "stuck-in-created"],
)  # fmt: skip
def test_a_payment_past_its_expiry_is_expired_unless_the_provider_calls_it_successful(
    azam, settings, answer, status, fields
):
    """It expires at its deadline even while the provider cannot be asked; if the money did move after all, a
    verified success later (an admin's "check now") is still applied, and flagged for a person."""
    azam.get(STATUS_URL, **answer)
    payment = PaymentFactory(**fields) if fields else due_payment()
    long_ago = timezone.now() - timedelta(seconds=settings.PAYMENT_EXPIRY_SECONDS + 60)
    Payment.objects.filter(pk=payment.pk).update(created_at=long_ago)
    report = payments_reconcile()
    assert (report.checked, report.changed) == (1, 1)
    payment.refresh_from_db()
    assert payment.status == status
    assert Donation.objects.get(pk=payment.donation_id).status == ("expired" if status == P.EXPIRED else "completed")
    assert credited(payment) == (0 if status == P.EXPIRED else Decimal("5000"))
    assert payment.next_check_at is None  # off the ladder either way
    if status == P.EXPIRED and payment.provider_reference:  # one it can ask about later
        azam.replace("GET", STATUS_URL, json=fixture("status_success.json"))
        assert payment_confirm(payment_id=payment.pk, on_demand=True)[1].changed
        payment.refresh_from_db()
        assert payment.status == P.SUCCEEDED and payment.needs_review
        assert credited(payment) == payment.amount


# --- reconciliation never gives up silently -------------------------------------------------------------


def breaks_for(monkeypatch, owner, name: str, error: Exception, odd) -> None:
    """`owner.name` raising `error` when `odd(its arguments)`, and working for everything else."""
    real = getattr(owner, name)

    def call(*args, **kwargs):
        if odd(*args, **kwargs):
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, call)


@pytest.mark.parametrize(
    ("breaks", "counted"), [("unreadable-answer", (0, 2, 1)), ("crash", (1, 1, 1))], ids=["unreadable-answer", "crash"]
)
def test_one_unreadable_answer_or_crash_does_not_stop_the_run(azam, monkeypatch, breaks, counted):
    from payments.providers.azampay.provider import AzamPayProvider
    from payments.services import reconcile

    odd, fine = due_payment(), due_payment()
    if breaks == "unreadable-answer":  # the adapter crashing on one answer (HTML where JSON was promised): unknown
        unreadable = KeyError("transactionstatus")
        breaks_for(
            monkeypatch, AzamPayProvider, "fetch_status", unreadable, lambda _, ref: ref.reference == odd.reference
        )
    else:
        crash = RuntimeError("MySQL server has gone away")
        breaks_for(monkeypatch, reconcile, "payment_confirm", crash, lambda *, payment_id: payment_id == odd.pk)
    azam.get(STATUS_URL, json=fixture("status_success.json"))
    report = payments_reconcile()

    assert (report.errors, report.checked, report.changed) == counted
    odd.refresh_from_db()
    fine.refresh_from_db()
    assert odd.status == P.PENDING and fine.status == P.SUCCEEDED
    assert odd.next_check_at is not None  # still on the ladder


# --- the donor's refresh button -------------------------------------------------------------------------


def test_refresh_asks_at_most_once_per_interval_per_donation_is_throttled_per_client_and_never_delays_the_ladder(
    azam, client, settings
):
    settings.REFRESH_RATE_LIMIT_PER_MINUTE = 5
    asked = azam.get(STATUS_URL, json=PENDING)
    scheduled = timezone.now() + timedelta(seconds=30)
    payment = due_payment(next_check_at=scheduled, check_count=0)
    url = f"/api/v1.0/donors/donations/{payment.donation.public_token}/refresh/"

    assert [client.post(url).status_code for _ in range(6)] == [200] * 5 + [429]
    assert asked.call_count == 1  # the others answered from what we know
    over = client.post(url)
    assert over.json()["code"] == "RATE_LIMIT_EXCEEDED" and over["X-RateLimit-Limit"] == "5"
    payment.refresh_from_db()
    assert payment.next_check_at == scheduled and payment.check_count == 0
    assert payment.last_checked_at is not None


# --- the operator's command -----------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["older-than", "reference"])
def test_the_operator_checks_a_payment_whose_first_rung_is_not_due(azam, capsys, by):
    """`--older-than 0m` run 3 s after a payment whose callback was lost: the operator's request wins over the
    ladder's first rung (30 s); `--reference` (in any case) checks that payment now, and no other."""
    azam.get(STATUS_URL, json=fixture("status_success.json"))
    wanted = PaymentFactory(next_check_at=timezone.now() + timedelta(seconds=27))
    other = PaymentFactory(next_check_at=timezone.now() - timedelta(seconds=1)) if by == "reference" else None
    args = ["--older-than", "0m"] if by == "older-than" else ["--reference", wanted.donation.reference.lower()]
    call_command("reconcile_payments", *args)
    assert "checked 1, changed 1" in capsys.readouterr().out
    wanted.refresh_from_db()
    assert wanted.status == P.SUCCEEDED
    assert other is None or Payment.objects.get(pk=other.pk).status == P.PENDING


@pytest.mark.parametrize(("reference", "message"), [("RHCI-DN-0-NOPE", "No payment"), (None, "already succeeded")])
def test_reference_that_cannot_be_checked_is_a_clear_error(reference, message):
    paid = PaymentFactory(status=P.SUCCEEDED)
    with pytest.raises(CommandError, match=message):
        call_command("reconcile_payments", "--reference", reference or paid.reference)
