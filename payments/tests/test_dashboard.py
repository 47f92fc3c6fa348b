"""The admin's first page and the settlement file, against known data: the dashboard's numbers, the lists its
links open, the chart's days, each provider's pulse; the settlement CSV's lines and totals against the ledger."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone

from config.tests.helpers import login_with_second_factor
from donor.models import Allocation
from donor.tests.factories import DonationFactory
from patients.tests.factories import PatientFactory
from payments.models import CallbackEvent, Payment, Refund
from payments.providers.base import PaymentStatus, ProviderResult
from payments.selectors import local_midnight
from payments.services.payments import payment_apply_result
from payments.services.refunds import refund_approve, refund_request
from payments.tests.factories import PaymentFactory, staff_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("azampay_settings")]


@pytest.fixture
def ops(client, django_user_model):
    superuser = django_user_model.objects.create_superuser("ops", "ops@example.org", "ops-pass-123")
    login_with_second_factor(client, superuser)  # a superuser can approve payouts: admin needs the second factor
    return client


def payment(provider: str, currency: str, amount: str, status: str, *, created: timezone.datetime) -> Payment:
    """A payment started at `created` that ended `status` through the real service (the ledger credited)."""
    patient = PatientFactory(currency=currency, funding_goal=Decimal("10000000"))
    donation = DonationFactory(patient=patient, amount=Decimal(amount), currency=currency)
    p = PaymentFactory(donation=donation, provider=provider, channel="Mpesa" if provider == "azampay" else "")
    if status != Payment.Status.PENDING:
        result = ProviderResult(
            status=PaymentStatus(status),
            provider_reference=p.provider_reference,
            our_reference=p.reference,
            amount=p.amount,
            currency=currency,
            receipt=f"RCPT{p.pk}" if status == Payment.Status.SUCCEEDED else "",
        )
        assert payment_apply_result(payment_id=p.pk, result=result, verified=True, cause="test").changed
    Payment.objects.filter(pk=p.pk).update(created_at=created)
    if status != Payment.Status.PENDING:
        Payment.objects.filter(pk=p.pk).update(completed_at=created + timedelta(seconds=20))
    return Payment.objects.get(pk=p.pk)


@pytest.fixture
def known_data():
    now = timezone.now()
    today = max(local_midnight(now, days_back=0), now - timedelta(minutes=30)) + timedelta(seconds=1)
    data = {
        "today_paid": [
            payment("azampay", "TZS", "5000", "succeeded", created=today),
            payment("azampay", "TZS", "2500", "succeeded", created=today),
        ],
        "today_failed": payment("azampay", "TZS", "1000", "failed", created=today),
        "stuck": payment("azampay", "TZS", "3000", "pending", created=now - timedelta(minutes=10)),
        "fresh": payment("azampay", "TZS", "3000", "pending", created=now - timedelta(seconds=30)),
        "three_days": payment("mpesa", "KES", "1500", "succeeded", created=local_midnight(now, days_back=3)),
        "twenty_days": payment("mpesa", "KES", "700", "succeeded", created=local_midnight(now, days_back=20)),
        "forty_days": payment("mpesa", "KES", "900", "succeeded", created=local_midnight(now, days_back=40)),
    }
    Payment.objects.filter(pk=data["three_days"].pk).update(needs_review=True)
    for status in ["received", "failed", "review", "dead", "processed", "processed", "rejected"]:
        CallbackEvent.objects.create(provider="azampay", body="{}", body_digest=status, status=status)
    old = CallbackEvent.objects.create(provider="mpesa", body="{}", body_digest="old", status="processed")
    CallbackEvent.objects.filter(pk=old.pk).update(received_at=now - timedelta(days=2))
    return data


def dashboard(client) -> dict:
    response = client.get("/admin/")
    assert response.status_code == 200
    return response.context["dashboard"]


def results_on(client, url: str) -> int:
    """How many rows the admin list behind a dashboard link shows (and that the admin accepted the filters)."""
    response = client.get(url)
    assert response.status_code == 200, url  # the admin redirects to ?e=1 when it refuses a filter
    return response.context["cl"].result_count


def test_windows_count_and_sum_per_rail_and_currency(ops, known_data):
    board = dashboard(ops)
    windows = {
        w["label"]: {(r["figures"].provider, r["figures"].currency): r for r in w["rows"]} for w in board["windows"]
    }

    today = windows["Today"][("azampay", "TZS")]["figures"]
    assert (today.completed, today.completed_amount, today.failed) == (2, Decimal("7500"), 1)
    assert today.pending >= 1  # the fresh one; the stuck one too when it started after midnight
    assert ("mpesa", "KES") not in windows["Today"]

    seven = windows["Last 7 days"][("mpesa", "KES")]["figures"]
    assert (seven.completed, seven.completed_amount) == (1, Decimal("1500"))
    thirty = windows["Last 30 days"][("mpesa", "KES")]["figures"]
    assert (thirty.completed, thirty.completed_amount) == (2, Decimal("2200"))  # not the 40-day-old one

    row = windows["Today"][("azampay", "TZS")]
    assert results_on(ops, row["completed_url"]) == 2
    assert results_on(ops, row["failed_url"]) == 1
    assert results_on(ops, windows["Last 30 days"][("mpesa", "KES")]["completed_url"]) == 2


def test_waiting_counts_link_to_their_lists(ops, known_data, django_user_model):
    maker = staff_user("maker", "payments.add_refund", "payments.view_refund")
    refund_request(
        donation=known_data["today_paid"][0].donation, amount=Decimal("1000"), reason="x", requested_by=maker
    )
    waiting = {label: (count, url) for label, count, url in dashboard(ops)["waiting"]}

    expected = {
        "Payments stuck (pending over 5 minutes)": 1,
        "Payments flagged for review": 1,
        "Callbacks held for review": 1,
        "Callbacks not settled yet (the sweeper re-runs them)": 2,
        "Callbacks parked as dead": 1,
        "Payouts waiting for a second person": 0,
        "Refunds waiting for a second person": 1,
    }
    for label, count in expected.items():
        assert waiting[label][0] == count, label
        assert results_on(ops, waiting[label][1]) == count, label


def test_a_pending_payout_destination_change_waits_on_the_dashboard(ops):
    from patients.destinations import destination_change_request
    from patients.tests.factories import TreatmentPartnerFactory

    partner = TreatmentPartnerFactory(payout_provider="mpesa", payout_msisdn="254708374149")
    maker = staff_user("partner-maker", "patients.change_treatmentpartner")
    new = {"payout_provider": "mpesa", "payout_msisdn": "254799999999"}
    destination_change_request(requested_by=maker, partner=partner, new=new)
    label = "Payout destination changes waiting for a second person"
    count, url = {label: (count, url) for label, count, url in dashboard(ops)["waiting"]}[label]
    assert count == 1 and results_on(ops, url) == 1


def test_provider_pulse_last_callback_and_error_rate(ops, known_data):
    pulse = {row["pulse"].provider: row for row in dashboard(ops)["pulse"]}
    azam = pulse["azampay"]["pulse"]
    # in the last 24 h: 7 events, of which failed, review, dead and rejected went wrong
    assert (azam.events, azam.errors, azam.error_rate) == (7, 4, Decimal("57.1"))
    assert results_on(ops, pulse["azampay"]["errors_url"]) == 4
    mpesa = pulse["mpesa"]["pulse"]
    assert mpesa.events == 0 and mpesa.last_callback_at is not None and mpesa.error_rate is None
    assert set(pulse) >= {"azampay", "mpesa", "mtn", "airtel"}


def test_chart_has_every_day_and_bars_link_to_that_days_payments(ops, known_data):
    response = ops.get("/admin/")
    charts = {chart["currency"]: chart for chart in response.context["dashboard"]["charts"]}
    tzs, kes = charts["TZS"], charts["KES"]
    assert len(tzs["bars"]) == 30 and tzs["total"] == Decimal("7500") and tzs["peak"] == Decimal("7500")
    assert tzs["bars"][-1].amount == Decimal("7500") and tzs["bars"][-1].height > 0
    assert kes["total"] == Decimal("2200")
    assert [bar.amount for bar in kes["bars"] if bar.amount] == [Decimal("700"), Decimal("1500")]
    assert results_on(ops, tzs["bars"][-1].url) == 2
    html = response.content.decode()
    assert "<svg" in html and "TZS 7,500" in html and tzs["bars"][-1].url.replace("&", "&amp;") in html


def test_staff_without_payment_access_see_no_figures(client, known_data):
    client.force_login(staff_user("clerk", "patients.view_patient"))
    response = client.get("/admin/")
    assert response.status_code == 200 and response.context["dashboard"] is None
    assert b"Needs a person" not in response.content


# --- settlement ------------------------------------------------------------------------------------------


def test_settlement_csv_lines_and_totals_agree_with_the_ledger(ops, known_data):
    paid = known_data["today_paid"][0]
    checker = staff_user("checker", "payments.approve_refund", "payments.view_refund")
    maker = staff_user("maker", "payments.add_refund", "payments.view_refund")
    refund = refund_request(donation=paid.donation, amount=Decimal("5000"), reason="Donor asked", requested_by=maker)
    refund = refund_approve(refund_id=refund.pk, approved_by=checker, receipt="AZ-MANUAL-1")
    assert refund.status == Refund.Status.REFUNDED

    day = timezone.localdate()
    out = io.StringIO()
    call_command("payments_report", "--format", "csv", "--date", day.isoformat(), "--provider", "azampay", stdout=out)
    lines = list(csv.DictReader(io.StringIO(out.getvalue())))
    by_ref = {(line["kind"], line["reference"]): line for line in lines}
    assert len(lines) == 4  # two paid, one failed, one refund; no pending one, no other provider
    first = by_ref[("payment", paid.reference)]
    assert (first["status"], first["amount"], first["currency"], first["receipt"]) == (
        "succeeded",
        "5000.00",
        "TZS",
        f"RCPT{paid.pk}",
    )
    assert first["provider_reference"] == paid.provider_reference and first["donation"] == paid.donation.reference
    assert by_ref[("payment", known_data["today_failed"].reference)]["amount"] == "0.00"
    assert by_ref[("refund", refund.reference)]["amount"] == "-5000.00"
    assert by_ref[("refund", refund.reference)]["receipt"] == "AZ-MANUAL-1"

    net = sum(Decimal(line["amount"]) for line in lines)
    donations = [p.donation_id for p in known_data["today_paid"]] + [known_data["today_failed"].donation_id]
    ledger = Allocation.objects.filter(donation_id__in=donations).aggregate(s=Sum("amount"))["s"]
    assert net == ledger == Decimal("2500")

    # the admin's download is the same file, and its page shows the same net
    query = {"start": day.isoformat(), "end": day.isoformat(), "provider": "azampay"}
    page = ops.get("/admin/payments/payment/settlement/", query)
    assert page.status_code == 200 and page.context["totals"] == [(("azampay", "TZS"), Decimal("2500"))]
    download = ops.get("/admin/payments/payment/settlement/", {**query, "download": "1"})
    assert download["Content-Type"].startswith("text/csv")
    assert f'filename="settlement-azampay-{day}-{day}.csv"' in download["Content-Disposition"]
    assert download.content.decode() == out.getvalue()


def test_payments_refused_at_start_or_expired_are_in_the_settlement_file_of_the_day_they_ended(
    ops, api_client, azam, settings
):
    from payments.services.reconcile import payments_reconcile
    from payments.tests.azampay_fakes import MNO_URL, STATUS_URL, fixture

    patient = PatientFactory(currency="TZS", funding_goal=Decimal("1000000"))
    body = {
        "patient": patient.code,
        "amount": "5000",
        "currency": "TZS",
        "provider": "azampay",
        "channel": "Mpesa",
        "phone_number": "0712345678",
    }
    azam.post(MNO_URL, json=fixture("mno_checkout_invalid_vendor.json"))
    refused_answer = api_client.post("/api/v1.0/donors/donations/", body, format="json")
    assert refused_answer.status_code == 502
    refused = Payment.objects.get(donation__reference=refused_answer.json()["reference"])
    assert refused.status == Payment.Status.FAILED and refused.completed_at is not None
    assert refused.next_check_at is None  # nothing left to ask about

    # one nobody confirmed, whose provider cannot be asked any more: reconciliation expires it
    stale = PaymentFactory(donation=DonationFactory(patient=patient, amount=Decimal("3000"), currency="TZS"))
    Payment.objects.filter(pk=stale.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.PAYMENT_EXPIRY_SECONDS + 60), next_check_at=None
    )
    azam.get(STATUS_URL, status=503)
    payments_reconcile(reference=stale.reference)
    stale.refresh_from_db()
    assert stale.status == Payment.Status.EXPIRED and stale.completed_at is not None

    day = timezone.localdate()
    out = io.StringIO()
    call_command("payments_report", "--format", "csv", "--date", day.isoformat(), stdout=out)
    lines = {line["reference"]: line for line in csv.DictReader(io.StringIO(out.getvalue()))}
    assert (lines[refused.reference]["status"], lines[refused.reference]["amount"]) == ("failed", "0.00")
    assert (lines[stale.reference]["status"], lines[stale.reference]["amount"]) == ("expired", "0.00")
    assert timezone.localtime(timezone.datetime.fromisoformat(lines[refused.reference]["time"])).date() == day

    query = {"start": day.isoformat(), "end": day.isoformat(), "provider": "", "download": "1"}
    download = ops.get("/admin/payments/payment/settlement/", query)
    assert download.status_code == 200 and download.content.decode() == out.getvalue()


@pytest.mark.parametrize(
    "query, message",
    [
        ({"start": "2026-12-05", "end": "2026-12-01"}, "before"),
        ({"start": "2026-01-01", "end": "2026-12-01"}, "At most 92 days"),
        ({"start": "yesterday", "end": "2026-12-01"}, "Enter a valid date"),
        ({"start": "2026-12-01", "end": "2026-12-01", "provider": "paypal"}, "Select a valid choice"),
    ],
)
def test_settlement_form_refuses_nonsense_with_a_message(ops, query, message):
    response = ops.get("/admin/payments/payment/settlement/", {**query, "download": "1"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    assert message in response.content.decode()


def test_the_migration_dates_payments_that_ended_without_completed_at():
    import importlib

    from django.apps import apps

    migration = importlib.import_module("payments.migrations.0006_backfill_completed_at_of_refused_payments")
    old = PaymentFactory(status=Payment.Status.FAILED, completed_at=None)
    pending = PaymentFactory(status=Payment.Status.PENDING, completed_at=None)
    migration.backfill(apps, None)
    old.refresh_from_db()
    pending.refresh_from_db()
    assert old.completed_at == old.updated_at and old.next_check_at is None
    assert pending.completed_at is None
