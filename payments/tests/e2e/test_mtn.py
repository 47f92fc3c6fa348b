"""MTN MoMo end to end over real HTTP: the live site, the MTN simulator (/mtn), real callbacks PUT to each request's
X-Callback-Url.

One test per row of docs/api.md's outcome table, MTN's own sandbox numbers (46733123450–63), the quirks of the rail
(callbacks by PUT, a status GET that answers 404 right after the 202, nothing signed), a payout and a partial
refund through maker-checker. MTN signs nothing: every callback is confirmed by the request-to-pay status GET
before anything is credited. The simulator runs ten times faster than real time, in Uganda's environment
(`mtnuganda`, UGX).
"""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from django.conf import settings as django_settings
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

from donor.models import Allocation, Donation
from patients.models import Patient
from patients.tests.factories import PatientFactory, TreatmentPartnerFactory
from payments.models import CallbackEvent, Payment, Payout, Refund
from payments.providers.mtn.codes import NOT_VISIBLE_TEXT
from payments.providers.mtn.config import CONFIG as MTN_CONFIG
from payments.sandbox.outcomes import Result
from payments.sandbox.server import run_sandbox
from payments.services.payments import payment_confirm
from payments.services.payouts import payout_approve, payout_request, payouts_reconcile
from payments.services.reconcile import payments_reconcile
from payments.services.refunds import refund_approve, refund_request
from payments.tests.e2e.support import (
    donate_via_api,
    refresh,
    sandbox_charge,
    sandbox_charges,
    status_of,
    wait_for_deliveries,
    wait_for_status,
    wait_until,
)
from payments.tests.factories import staff_user
from payments.tests.helpers import credited
from payments.url_tokens import url_token_digest

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
TIME_SCALE = 0.1
PATIENT = "PAT-UG-MTN"
CURRENCY = "UGX"
ENVIRONMENT = "mtnuganda"  # the simulator's Uganda: UGX (its "sandbox" environment takes EUR only)
ACK = {"status": "accepted", "message": "Callback received"}
COLLECTION_PATH = "/webhooks/mtn/collection/"
ON_MARIADB = django_settings.DATABASES["default"]["ENGINE"] == "django.db.backends.mysql"


def start_sandbox(live_server, settings, time_scale: float = TIME_SCALE):
    cache.clear()  # MTN tokens and rate-limit counters of an earlier test
    server = run_sandbox(port=0, callback_url=live_server.url + "/unused/", time_scale=time_scale)
    config = {
        **settings.PAYMENT_PROVIDERS["mtn"],
        **MTN_CONFIG.sandbox_credentials(),
        "api_url": f"{server.base_url}/mtn",
        "target_environment": ENVIRONMENT,
        "currency": CURRENCY,
    }
    settings.PAYMENT_PROVIDERS = {**settings.PAYMENT_PROVIDERS, "mtn": config}
    settings.SITE_URL = live_server.url
    return server


@pytest.fixture
def sandbox(live_server, settings):
    server = start_sandbox(live_server, settings)
    yield server
    server.shutdown()
    cache.clear()


@pytest.fixture
def patient(db):
    return PatientFactory(code=PATIENT, currency=CURRENCY, funding_goal=Decimal("10000000"))


@pytest.fixture
def refund_maker(db):
    return staff_user("refund-maker", "payments.add_refund", "payments.view_refund")


@pytest.fixture
def refund_checker(db):
    return staff_user("refund-checker", "payments.approve_refund", "payments.resolve_refund", "payments.view_refund")


def donate(live_server, phone: str, amount: str = "5000") -> dict:
    return donate_via_api(
        live_server, patient=PATIENT, amount=amount, currency=CURRENCY, provider="mtn", phone_number=phone
    )


def charge_of(sandbox, created: dict) -> dict:
    """The simulator's request to pay for a donation: MTN knows it by our X-Reference-Id."""
    return sandbox_charge(sandbox, "mtn", transactionId=created["payment"]["provider_reference"])


def deliveries_of(sandbox, created: dict, count: int, seconds: float = 15) -> list[dict]:
    return wait_for_deliveries(
        sandbox, "mtn", count, seconds=seconds, transactionId=created["payment"]["provider_reference"]
    )


def decided(sandbox, created: dict) -> bool:
    return charge_of(sandbox, created)["status"] != "pending"


# --- the outcome table -------------------------------------------------------------------------------------


def test_success_is_credited_once_the_status_get_confirms_the_put_callback(live_server, sandbox, patient):
    created = donate(live_server, "0772123400")
    assert created["next_action"]["type"] == "await_phone_confirmation"
    reference_id = created["payment"]["provider_reference"]
    payment = Payment.objects.get()
    assert reference_id == payment.provider_reference  # our X-Reference-Id, chosen before the request left
    status = wait_for_status(live_server, created["reference"])
    assert status["status"] == "completed"
    assert status["transactionId"] == reference_id
    charge = charge_of(sandbox, created)
    assert status["receipt"] == charge["extra"]["financialTransactionId"]
    assert credited(patient) == Decimal("5000")
    assert (charge["msisdn"], charge["amount"], charge["currency"]) == ("256772123400", "5000", "UGX")
    assert charge["externalId"] == created["reference"]
    assert charge["extra"]["target_environment"] == ENVIRONMENT
    [delivery] = deliveries_of(sandbox, created, 1)
    prefix = f"{live_server.url}{COLLECTION_PATH}"
    assert delivery["url"].startswith(prefix)
    token = delivery["url"].removeprefix(prefix).rstrip("/")
    assert Payment.objects.get().callback_token_digest == url_token_digest(token) != token
    assert delivery["http_status"] == 200 and json.loads(delivery["response"]) == ACK
    assert charge_of(sandbox, created)["extra"]["queries"] >= 1  # the callback alone credited nothing
    event = CallbackEvent.objects.get(provider="mtn")
    assert (event.kind, event.trust, event.status) == ("collection", "unverified", CallbackEvent.Status.PROCESSED)
    assert Allocation.objects.filter(donation__reference=created["reference"]).count() == 1


def test_insufficient_funds_fails_with_mtns_reason(live_server, sandbox, patient):
    status = wait_for_status(live_server, donate(live_server, "0772123401")["reference"])
    assert status["status"] == "failed"
    assert "not enough money" in status["status_reason"].lower()
    assert "NOT_ENOUGH_FUNDS" in Payment.objects.get().failure_reason
    assert credited(patient) == 0


def test_declined_on_the_phone_is_cancelled(live_server, sandbox, patient):
    status = wait_for_status(live_server, donate(live_server, "0772123402")["reference"])
    assert status["status"] == "cancelled"
    assert "APPROVAL_REJECTED" in Payment.objects.get().failure_reason
    assert credited(patient) == 0


def test_no_answer_expires_through_the_donors_refresh(live_server, sandbox, patient, settings):
    settings.REFRESH_MIN_INTERVAL_SECONDS = 0  # let every refresh ask MTN (the simulator decides in ~3 s)
    settings.REFRESH_RATE_LIMIT_PER_MINUTE = 10_000
    created = donate(live_server, "0772123403")
    reference = created["reference"]
    first = refresh(live_server, reference)
    assert first.status_code == 200 and first.json()["status"] == "pending"

    def settled() -> dict | None:
        body = refresh(live_server, reference).json()
        return body if body["status"] != "pending" else None

    status = wait_until(settled, seconds=20, interval=0.3)
    assert status and status["status"] == "expired"
    assert "EXPIRED" in Payment.objects.get().failure_reason
    assert charge_of(sandbox, created)["deliveries"] == []  # no callback ever: only the status GET knew
    assert credited(patient) == 0


def test_three_concurrent_put_callbacks_credit_once(live_server, sandbox, patient):
    created = donate(live_server, "0772123404")
    assert wait_for_status(live_server, created["reference"])["status"] == "completed"
    deliveries = deliveries_of(sandbox, created, 3)
    assert len(deliveries) == 3
    assert all(d["http_status"] == 200 and json.loads(d["response"]) == ACK for d in deliveries)
    assert credited(patient) == Decimal("5000")
    assert Allocation.objects.filter(donation__reference=created["reference"]).count() == 1
    statuses = sorted(CallbackEvent.objects.filter(provider="mtn").values_list("status", flat=True))
    assert len(statuses) == 3 and statuses.count(CallbackEvent.Status.PROCESSED) == 1
    assert set(statuses) - {CallbackEvent.Status.PROCESSED} <= {CallbackEvent.Status.DUPLICATE, "ignored"}


def test_lost_callback_is_found_by_reconciliation(live_server, sandbox, patient):
    created = donate(live_server, "0772123405")
    reference = created["reference"]
    assert wait_until(lambda: decided(sandbox, created))  # MTN has the money; the site has heard nothing
    assert status_of(live_server, reference)["status"] == "pending"
    Payment.objects.filter(reference=reference).update(next_check_at=timezone.now() - timedelta(seconds=1))
    report = payments_reconcile()
    assert report.changed == 1
    assert status_of(live_server, reference)["status"] == "completed"
    assert charge_of(sandbox, created)["deliveries"] == []
    assert credited(patient) == Decimal("5000")


def test_late_callback_still_completes(live_server, sandbox, patient):
    created = donate(live_server, "0772123406")
    reference = created["reference"]
    assert wait_until(lambda: decided(sandbox, created))
    assert status_of(live_server, reference)["status"] == "pending"  # paid at MTN, the callback ~1 s away
    assert wait_for_status(live_server, reference, seconds=15)["status"] == "completed"
    assert len(deliveries_of(sandbox, created, 1)) == 1
    assert credited(patient) == Decimal("5000")


def test_failure_then_success_out_of_order_ends_completed_once(live_server, sandbox, patient):
    created = donate(live_server, "0772123407")
    deliveries = deliveries_of(sandbox, created, 2)
    assert [d["label"] for d in deliveries] == [Result.FAILED, Result.SUCCESS]
    assert all(d["http_status"] == 200 for d in deliveries)
    status = wait_for_status(live_server, created["reference"], until=lambda s: s == "completed", seconds=5)
    assert status["status"] == "completed"
    assert credited(patient) == Decimal("5000")
    assert Donation.objects.get(reference=created["reference"]).allocations.count() == 1
    assert CallbackEvent.objects.filter(provider="mtn", status=CallbackEvent.Status.PROCESSED).count() == 1


# --- MTN's own sandbox numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "status", "reason"),
    [
        ("46733123450", "failed", "INTERNAL_PROCESSING_ERROR"),
        ("46733123451", "cancelled", "APPROVAL_REJECTED"),
        ("46733123452", "expired", "EXPIRED"),
    ],
)
def test_mtns_sandbox_numbers_that_fail(live_server, sandbox, patient, phone, status, reason):
    created = donate(live_server, phone)
    assert wait_for_status(live_server, created["reference"])["status"] == status
    assert reason in Payment.objects.get().failure_reason
    assert charge_of(sandbox, created)["msisdn"] == phone
    assert credited(patient) == 0


def test_mtns_pending_number_stays_pending_whatever_we_ask(live_server, sandbox, patient):
    created = donate(live_server, "46733123453")
    reference = created["reference"]
    for _ in range(2):
        report = payments_reconcile(reference=reference)
        assert (report.checked, report.changed, report.still_pending) == (1, 0, 1)
    assert wait_until(lambda: charge_of(sandbox, created)["extra"]["queries"] >= 2)
    assert status_of(live_server, reference)["status"] == "pending"
    assert charge_of(sandbox, created)["deliveries"] == []
    assert Payment.objects.get().status == Payment.Status.PENDING
    assert credited(patient) == 0


def test_mtns_delayed_number_is_created_then_successful(live_server, sandbox, patient):
    created = donate(live_server, "46733123454")
    reference = created["reference"]
    # MTN says CREATED for ~2.5 s (25 s unscaled): pending, never a failure.
    report = payments_reconcile(reference=reference)
    assert (report.checked, report.still_pending) == (1, 1)
    assert status_of(live_server, reference)["status"] == "pending"
    assert wait_for_status(live_server, reference, seconds=20)["status"] == "completed"
    assert len(deliveries_of(sandbox, created, 1)) == 1
    assert credited(patient) == Decimal("5000")


# --- the rail's quirks --------------------------------------------------------------------------------------


def test_callbacks_come_by_put_post_is_accepted_too_and_get_is_refused(live_server, sandbox, patient):
    created = donate(live_server, "0772123405")  # no callback of the simulator's own: we deliver it ourselves
    assert wait_until(lambda: decided(sandbox, created))
    simulated = sandbox.store.get_charge("mtn", created["payment"]["provider_reference"])
    body = json.dumps(sandbox.simulators["mtn"].status_body(simulated, Result.SUCCESS)).encode()
    url = charge_of(sandbox, created)["extra"]["callback_url"]  # the X-Callback-Url with the payment's secret
    headers = {"Content-Type": "application/json"}

    put = requests.put(url, data=body, headers=headers, allow_redirects=False, timeout=10)
    assert (put.status_code, put.json()) == (200, ACK)
    assert status_of(live_server, created["reference"])["status"] == "completed"
    post = requests.post(url, data=body, headers=headers, allow_redirects=False, timeout=10)
    assert (post.status_code, post.json()) == (200, ACK)
    refused = requests.get(url, allow_redirects=False, timeout=10)
    assert refused.status_code == 405 and set(refused.headers["Allow"].split(", ")) == {"POST", "PUT"}

    assert credited(patient) == Decimal("5000")
    events = list(CallbackEvent.objects.filter(provider="mtn").order_by("pk").values_list("status", flat=True))
    assert events == [CallbackEvent.Status.PROCESSED, CallbackEvent.Status.DUPLICATE]


def test_status_get_404_right_after_the_202_is_pending_not_a_failure(live_server, settings, patient):
    # Twenty times slower than real time: MTN's GET answers 404 for 10 s after the 202 (0.5 s unscaled).
    server = start_sandbox(live_server, settings, time_scale=20.0)
    try:
        created = donate(live_server, "0772123400")
        payment = Payment.objects.get()
        result, outcome = payment_confirm(payment_id=payment.pk)
        assert result is not None and (result.status, result.message) == ("pending", NOT_VISIBLE_TEXT)
        assert not outcome.changed
        payment.refresh_from_db()
        assert payment.status == Payment.Status.PENDING and payment.failure_reason == ""
        assert status_of(live_server, created["reference"])["status"] == "pending"
        assert sandbox_charge(server, "mtn", transactionId=payment.provider_reference)["extra"]["queries"] == 1
    finally:
        server.shutdown()
        cache.clear()


def forged_success(created: dict, amount: str = "5000") -> bytes:
    return json.dumps(
        {
            "financialTransactionId": "999999999",
            "externalId": created["reference"],
            "amount": amount,
            "currency": CURRENCY,
            "payer": {"partyIdType": "MSISDN", "partyId": "256772123403"},
            "payerMessage": "Donation",
            "payeeNote": "Donation",
            "status": "SUCCESSFUL",
        }
    ).encode()


@pytest.mark.parametrize("path", ["/webhooks/mtn/collection/", "/webhooks/mtn/collection"])
def test_forged_success_is_not_credited_while_mtn_says_pending(live_server, sandbox, patient, path):
    created = donate(live_server, "0772123403")  # nobody answers the prompt: MTN keeps saying PENDING
    response = requests.put(
        live_server.url + path,
        data=forged_success(created),
        headers={"Content-Type": "application/json"},
        allow_redirects=False,
        timeout=10,
    )
    assert (response.status_code, response.json()) == (200, ACK)
    assert status_of(live_server, created["reference"])["status"] == "pending"
    assert credited(patient) == 0
    event = CallbackEvent.objects.get(provider="mtn")
    assert (event.status, event.trust) == (CallbackEvent.Status.REVIEW, "unverified")
    assert "pending" in event.error


def test_forged_success_on_a_secret_url_we_never_issued_is_401(live_server, sandbox, patient):
    created = donate(live_server, "0772123403")
    response = requests.put(
        f"{live_server.url}{COLLECTION_PATH}not-the-token/",
        data=forged_success(created),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 401 and response.json()["code"] == "AUTH_REQUIRED"
    assert CallbackEvent.objects.get(provider="mtn").status == CallbackEvent.Status.REJECTED
    assert charge_of(sandbox, created)["extra"]["queries"] == 0  # MTN was not even asked
    assert status_of(live_server, created["reference"])["status"] == "pending"
    assert credited(patient) == 0


def test_health_endpoint_shows_pending_payments_and_the_last_callback(live_server, sandbox, patient):
    donate(live_server, "0772123403")
    for path in ("/webhooks/mtn/health/", "/webhooks/mtn/health"):
        body = requests.get(live_server.url + path, allow_redirects=False, timeout=10).json()
        assert (body["status"], body["provider"]) == ("healthy", "mtn_mobile_money")
        assert body["pending_payments"] == 1 and body["last_callback_at"] is None
        assert "timestamp" in body
    paid = donate(live_server, "0772123400")
    assert wait_for_status(live_server, paid["reference"])["status"] == "completed"
    body = requests.get(f"{live_server.url}/webhooks/mtn/health/", timeout=10).json()
    assert body["pending_payments"] == 1
    assert body["last_callback_at"] is not None


# --- money going out: a payout and a refund through maker-checker ----------------------------------------------


@pytest.mark.parametrize(
    ("msisdn", "callback"),
    [
        pytest.param(
            "256772123400",
            True,
            id="result-callback",
        ),
        pytest.param("256772123405", False, id="lost-callback-found-by-reconciliation"),
    ],
)
def test_payout_to_an_mtn_treatment_partner_ends_paid(live_server, sandbox, maker, checker, msisdn, callback):
    partner = TreatmentPartnerFactory(payout_provider="mtn", payout_msisdn=msisdn, country="UG")
    funded = PatientFactory(
        code="PAT-UG-30",
        currency=CURRENCY,
        funding_goal=Decimal("20000"),
        funding_received=Decimal("20000"),
        status=Patient.Status.FULLY_FUNDED,
        treatment_partner=partner,
    )
    requested = payout_request(patient=funded, amount=Decimal("15000"), requested_by=maker)
    assert requested.status == Payout.Status.REQUESTED  # the maker's step sends nothing
    assert sandbox_charges(sandbox, "mtn") == []
    payout = payout_approve(payout_id=requested.pk, approved_by=checker)
    assert payout.status in (Payout.Status.SENT, Payout.Status.PAID)  # the callback may beat our own update
    charge = sandbox_charge(sandbox, "mtn", transactionId=payout.provider_reference)  # our X-Reference-Id
    assert (charge["channel"], charge["externalId"], charge["amount"]) == ("transfer", payout.reference, "15000")
    if not callback:  # the result callback is lost: the transfer status GET finds it
        assert wait_until(
            lambda: sandbox_charge(sandbox, "mtn", transactionId=payout.provider_reference)["status"] != "pending"
        )
        Payout.objects.filter(pk=payout.pk).update(next_check_at=timezone.now() - timedelta(seconds=1))
        assert payouts_reconcile() == 1

    def paid() -> bool:
        payout.refresh_from_db()
        return payout.status == Payout.Status.PAID

    assert wait_until(paid, seconds=10)
    charge = sandbox_charge(sandbox, "mtn", transactionId=payout.provider_reference)
    assert payout.receipt == charge["extra"]["financialTransactionId"]
    assert not payout.needs_review
    funded.refresh_from_db()
    assert funded.status == Patient.Status.IN_TREATMENT
    events = CallbackEvent.objects.filter(provider="mtn", kind="disbursement")
    if callback:
        # The sandbox records a delivery once our answer reaches it, which can be a moment after the payout is paid.
        assert wait_until(lambda: sandbox_charge(sandbox, "mtn", transactionId=payout.provider_reference)["deliveries"])
        charge = sandbox_charge(sandbox, "mtn", transactionId=payout.provider_reference)
        [delivery] = charge["deliveries"]
        assert delivery["url"] == f"{live_server.url}/webhooks/mtn/disbursement/"
        assert json.loads(delivery["response"]) == ACK
        assert [e.status for e in events] == [CallbackEvent.Status.PROCESSED]
    else:
        assert charge["deliveries"] == [] and not events.exists()


def test_partial_refund_of_an_mtn_donation_reverses_the_ledger(
    live_server, sandbox, patient, refund_maker, refund_checker
):
    created = donate(live_server, "0772123400")
    assert wait_for_status(live_server, created["reference"])["status"] == "completed"
    donation = Donation.objects.get(reference=created["reference"])
    payment = Payment.objects.get()
    requested = refund_request(
        donation=donation, amount=Decimal("2000"), reason="Donor's request", requested_by=refund_maker
    )
    refund = refund_approve(refund_id=requested.pk, approved_by=refund_checker)
    assert refund.status in (Refund.Status.SENT, Refund.Status.REFUNDED)

    def refunded() -> bool:
        refund.refresh_from_db()
        return refund.status == Refund.Status.REFUNDED

    assert wait_until(refunded, seconds=10)
    simulated = sandbox_charge(sandbox, "mtn", transactionId=refund.provider_reference)
    assert simulated["channel"] == "refund" and simulated["amount"] == "2000"
    assert simulated["extra"]["refund_of"] == payment.provider_reference  # referenceIdToRefund: the payment's id
    assert refund.receipt  # which id it holds: see payments/tests/drivers.py, MtnRefund (MTN's receipt is dropped)
    [delivery] = wait_for_deliveries(sandbox, "mtn", 1, transactionId=refund.provider_reference)
    assert delivery["url"] == f"{live_server.url}/webhooks/mtn/refund/" and delivery["http_status"] == 200
    assert CallbackEvent.objects.get(provider="mtn", kind="refund").status == CallbackEvent.Status.PROCESSED

    donation.refresh_from_db()
    assert donation.status == Donation.Status.COMPLETED  # partly refunded: still a gift of UGX 3,000
    assert "UGX 2,000" in donation.status_reason and "refunded" in donation.status_reason
    amounts = sorted(Allocation.objects.filter(donation=donation).values_list("amount", flat=True))
    assert amounts == [Decimal("-2000"), Decimal("5000")]
    assert credited(patient) == Decimal("3000")
    call_command("verify_ledger")  # exits 1 (SystemExit) on drift
