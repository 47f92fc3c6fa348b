"""Airtel Money end to end over real HTTP: the live site, the Airtel simulator (/airtel), real collection callbacks
to the one URL set on Airtel's portal (/webhooks/airtel/payment/), signed with a `hash`.

One test per row of docs/api.md's outcome table, the callback `hash` checked with AIRTEL_CALLBACK_SECRET set on both
sides (and a forged one refused), payouts through maker-checker (Airtel answers them synchronously), a full
refund. A callback, even with a good hash, is only a reason to ask: the transaction enquiry decides. The simulator
runs ten times faster than real time, in Uganda (UG, UGX).
"""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

from donor.models import Allocation, Donation
from patients.models import Patient
from patients.tests.factories import PatientFactory, TreatmentPartnerFactory
from payments.models import CallbackEvent, Payment, Payout, Refund
from payments.providers.airtel.client import airtel_id
from payments.providers.airtel.config import CONFIG as AIRTEL_CONFIG
from payments.sandbox.airtel import callback_hash
from payments.sandbox.outcomes import Result
from payments.sandbox.server import run_sandbox
from payments.services.payouts import payout_approve, payout_request, payouts_reconcile
from payments.services.reconcile import payments_reconcile
from payments.services.refunds import RefundRefused, refund_approve, refund_check, refund_request
from payments.tests.e2e.support import (
    donate_via_api,
    sandbox_charge,
    sandbox_charges,
    status_of,
    wait_for_deliveries,
    wait_for_status,
    wait_until,
)
from payments.tests.factories import staff_user
from payments.tests.helpers import credited

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
TIME_SCALE = 0.1
PATIENT = "PAT-UG-AIR"
CURRENCY = "UGX"
CALLBACK_SECRET = "e2e-airtel-callback-secret"  # AIRTEL_CALLBACK_SECRET, the same on Airtel's side (the simulator)
PAYMENT_PATH = "/webhooks/airtel/payment/"
ACK = {"status": {"code": "200", "message": "Callback received successfully", "success": True}}


@pytest.fixture
def sandbox(live_server, settings):
    cache.clear()  # Airtel tokens, its RSA key, rate-limit counters of an earlier test
    config = {
        **settings.PAYMENT_PROVIDERS["airtel"],
        **AIRTEL_CONFIG.sandbox_credentials(),
        "country": "UG",
        "currency": CURRENCY,
        "callback_secret": CALLBACK_SECRET,
    }
    # The simulator signs its callbacks with the site's AIRTEL_CALLBACK_SECRET, read when it starts.
    settings.PAYMENT_PROVIDERS = {**settings.PAYMENT_PROVIDERS, "airtel": config}
    server = run_sandbox(port=0, callback_url=live_server.url + "/unused/", time_scale=TIME_SCALE)
    settings.PAYMENT_PROVIDERS = {
        **settings.PAYMENT_PROVIDERS,
        "airtel": {**config, "api_url": f"{server.base_url}/airtel"},
    }
    settings.SITE_URL = live_server.url
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
        live_server, patient=PATIENT, amount=amount, currency=CURRENCY, provider="airtel", phone_number=phone
    )


def charge_of(sandbox, created: dict) -> dict:
    """The simulator's collection for a donation: Airtel knows it by our id in its alphabet."""
    return sandbox_charge(sandbox, "airtel", externalId=airtel_id(created["reference"]), channel="ussd_push")


def deliveries_of(sandbox, created: dict, count: int, seconds: float = 15) -> list[dict]:
    return wait_for_deliveries(
        sandbox, "airtel", count, seconds=seconds, externalId=airtel_id(created["reference"]), channel="ussd_push"
    )


def decided(sandbox, created: dict) -> bool:
    return charge_of(sandbox, created)["status"] != "pending"


# --- the outcome table -------------------------------------------------------------------------------------


def test_success_is_credited_once_the_enquiry_confirms_the_signed_callback(live_server, sandbox, patient):
    assert sandbox.simulators["airtel"].callback_secret == CALLBACK_SECRET  # both sides hold the secret
    created = donate(live_server, "0752123400")
    assert created["next_action"]["type"] == "await_phone_confirmation"
    status = wait_for_status(live_server, created["reference"])
    assert status["status"] == "completed"
    charge = charge_of(sandbox, created)
    money_id = charge["transactionId"]  # Airtel's airtel_money_id
    assert status["receipt"] == money_id and status["transactionId"] == money_id
    assert (charge["msisdn"], charge["amount"], charge["currency"]) == ("752123400", "5000", "UGX")
    payment = Payment.objects.get()
    assert payment.external_id == charge["externalId"] == airtel_id(created["reference"])
    assert credited(patient) == Decimal("5000")
    [delivery] = deliveries_of(sandbox, created, 1)
    assert delivery["url"] == f"{live_server.url}{PAYMENT_PATH}"
    assert delivery["http_status"] == 200 and json.loads(delivery["response"]) == ACK
    assert charge_of(sandbox, created)["extra"]["queries"] >= 1  # the enquiry decided, not the callback
    event = CallbackEvent.objects.get(provider="airtel")
    assert (event.kind, event.status) == ("payment", CallbackEvent.Status.PROCESSED)
    assert event.trust == "unverified"  # the hash matched (a mismatch is "rejected"); crediting still waited
    assert "hash" not in json.loads(event.body)  # keyed with our secret: never stored
    assert Allocation.objects.filter(donation__reference=created["reference"]).count() == 1


def test_insufficient_funds_fails_with_airtels_reason(live_server, sandbox, patient):
    status = wait_for_status(live_server, donate(live_server, "0752123401")["reference"])
    assert status["status"] == "failed"
    assert "not enough balance" in status["status_reason"].lower()
    assert "DP00800001007" in Payment.objects.get().failure_reason
    assert credited(patient) == 0


def test_cancelled_on_the_phone(live_server, sandbox, patient):
    status = wait_for_status(live_server, donate(live_server, "0752123402")["reference"])
    assert status["status"] == "cancelled"
    assert "cancelled" in Payment.objects.get().failure_reason
    assert credited(patient) == 0


def test_no_answer_expires_through_reconciliation(live_server, sandbox, patient):
    created = donate(live_server, "0752123403")
    reference = created["reference"]
    report = payments_reconcile(reference=reference)  # Airtel says TIP/TA while the prompt is open
    assert (report.checked, report.still_pending) == (1, 1)
    assert status_of(live_server, reference)["status"] == "pending"

    def settled() -> bool:
        return payments_reconcile(reference=reference).changed == 1 if decided(sandbox, created) else False

    assert wait_until(settled, seconds=20, interval=0.2)
    assert status_of(live_server, reference)["status"] == "expired"
    assert "DP00800001024" in Payment.objects.get().failure_reason  # TF, the prompt timed out
    assert charge_of(sandbox, created)["deliveries"] == []
    assert credited(patient) == 0


def test_three_concurrent_signed_callbacks_credit_once(live_server, sandbox, patient):
    created = donate(live_server, "0752123404")
    assert wait_for_status(live_server, created["reference"])["status"] == "completed"
    deliveries = deliveries_of(sandbox, created, 3)
    assert len(deliveries) == 3
    assert all(d["http_status"] == 200 and json.loads(d["response"]) == ACK for d in deliveries)
    assert credited(patient) == Decimal("5000")
    assert Allocation.objects.filter(donation__reference=created["reference"]).count() == 1
    statuses = sorted(CallbackEvent.objects.filter(provider="airtel").values_list("status", flat=True))
    assert len(statuses) == 3 and statuses.count(CallbackEvent.Status.PROCESSED) == 1
    assert set(statuses) - {CallbackEvent.Status.PROCESSED} <= {CallbackEvent.Status.DUPLICATE, "ignored"}


def test_lost_callback_is_found_by_reconciliation(live_server, sandbox, patient):
    created = donate(live_server, "0752123405")
    reference = created["reference"]
    assert wait_until(lambda: decided(sandbox, created))
    assert status_of(live_server, reference)["status"] == "pending"
    Payment.objects.filter(reference=reference).update(next_check_at=timezone.now() - timedelta(seconds=1))
    report = payments_reconcile()
    assert report.changed == 1
    assert status_of(live_server, reference)["status"] == "completed"
    assert charge_of(sandbox, created)["deliveries"] == []
    assert credited(patient) == Decimal("5000")
    assert Payment.objects.get().receipt == charge_of(sandbox, created)["transactionId"]


def test_late_callback_still_completes(live_server, sandbox, patient):
    created = donate(live_server, "0752123406")
    reference = created["reference"]
    assert wait_until(lambda: decided(sandbox, created))
    assert status_of(live_server, reference)["status"] == "pending"
    assert wait_for_status(live_server, reference, seconds=15)["status"] == "completed"
    assert len(deliveries_of(sandbox, created, 1)) == 1
    assert credited(patient) == Decimal("5000")


def test_failure_then_success_out_of_order_ends_completed_once(live_server, sandbox, patient):
    created = donate(live_server, "0752123407")
    deliveries = deliveries_of(sandbox, created, 2)
    assert [d["label"] for d in deliveries] == [Result.FAILED, Result.SUCCESS]
    assert all(d["http_status"] == 200 for d in deliveries)
    status = wait_for_status(live_server, created["reference"], until=lambda s: s == "completed", seconds=5)
    assert status["status"] == "completed"
    assert credited(patient) == Decimal("5000")
    assert Donation.objects.get(reference=created["reference"]).allocations.count() == 1


# --- the hash -----------------------------------------------------------------------------------------------


def paid_callback(created: dict, *, secret: str | None, money_id: str = "MP261202.1200.X00001") -> bytes:
    """Airtel's collection callback saying TS for the donation, with the hash of `secret` (None: no hash)."""
    transaction = {
        "id": airtel_id(created["reference"]),
        "message": f"Paid UGX 5,000 to DONATION PORTAL Charge UGX 0, Trans ID {money_id}.",
        "status_code": "TS",
        "airtel_money_id": money_id,
    }
    body: dict = {"transaction": transaction}
    if secret is not None:
        body["hash"] = callback_hash(secret, transaction)
    return json.dumps(body).encode()


@pytest.mark.parametrize("secret", ["not-our-secret", None], ids=["wrong-hash", "no-hash"])
def test_forged_callback_without_our_hash_is_401_and_credits_nothing(live_server, sandbox, patient, secret):
    created = donate(live_server, "0752123403")  # the payer never answers: Airtel says TIP
    response = requests.post(
        live_server.url + PAYMENT_PATH,
        data=paid_callback(created, secret=secret),
        headers={"Content-Type": "application/json"},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 401 and response.json()["code"] == "AUTH_REQUIRED"
    event = CallbackEvent.objects.get(provider="airtel")
    assert (event.status, event.trust) == (CallbackEvent.Status.REJECTED, "rejected")
    assert charge_of(sandbox, created)["extra"]["queries"] == 0  # Airtel was not even asked
    assert status_of(live_server, created["reference"])["status"] == "pending"
    assert credited(patient) == 0


def test_a_correctly_signed_success_is_still_not_credited_while_airtel_says_pending(live_server, sandbox, patient):
    created = donate(live_server, "0752123403")
    response = requests.post(
        live_server.url + PAYMENT_PATH,
        data=paid_callback(created, secret=CALLBACK_SECRET),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert (response.status_code, response.json()) == (200, ACK)
    event = CallbackEvent.objects.get(provider="airtel")
    assert (event.status, event.trust) == (CallbackEvent.Status.REVIEW, "unverified")
    assert charge_of(sandbox, created)["extra"]["queries"] == 1
    assert status_of(live_server, created["reference"])["status"] == "pending"
    assert credited(patient) == 0


def test_health_endpoint_shows_pending_payments_and_the_last_callback(live_server, sandbox, patient):
    donate(live_server, "0752123403")
    for path in ("/webhooks/airtel/health/", "/webhooks/airtel/health"):
        body = requests.get(live_server.url + path, allow_redirects=False, timeout=10).json()
        assert (body["status"], body["provider"]) == ("healthy", "airtel_money")
        assert body["pending_payments"] == 1 and body["last_callback_at"] is None
        assert "timestamp" in body
    paid = donate(live_server, "0752123400")
    assert wait_for_status(live_server, paid["reference"])["status"] == "completed"
    body = requests.get(f"{live_server.url}/webhooks/airtel/health/", timeout=10).json()
    assert body["pending_payments"] == 1
    assert body["last_callback_at"] is not None


# --- money going out: payouts and a full refund through maker-checker ----------------------------------------


@pytest.mark.parametrize(
    ("msisdn", "first"),
    [("256752123400", None), ("256752123403", Payout.Status.AMBIGUOUS), ("256752123406", Payout.Status.SENT)],
    ids=["paid-at-once", "ambiguous-then-paid", "processing-then-paid"],
)
def test_payout_to_an_airtel_treatment_partner_ends_paid(live_server, sandbox, maker, checker, msisdn, first):
    partner = TreatmentPartnerFactory(payout_provider="airtel", payout_msisdn=msisdn, country="UG")
    funded = PatientFactory(
        code="PAT-UG-31",
        currency=CURRENCY,
        funding_goal=Decimal("20000"),
        funding_received=Decimal("20000"),
        status=Patient.Status.FULLY_FUNDED,
        treatment_partner=partner,
    )
    requested = payout_request(patient=funded, amount=Decimal("15000"), requested_by=maker)
    assert sandbox_charges(sandbox, "airtel") == []  # the maker's step sends nothing
    payout = payout_approve(payout_id=requested.pk, approved_by=checker)
    [charge] = sandbox_charges(sandbox, "airtel", channel="disbursement")
    assert (charge["externalId"], charge["amount"], charge["msisdn"]) == (
        airtel_id(payout.reference),
        "15000",
        msisdn[3:],
    )
    if first is None:
        assert payout.status == Payout.Status.PAID  # Airtel answered TS: the answer is the result
    else:
        assert payout.status == first
        assert wait_until(lambda: sandbox_charge(sandbox, "airtel", channel="disbursement")["status"] != "pending")
        Payout.objects.filter(pk=payout.pk).update(next_check_at=timezone.now() - timedelta(seconds=1))
        assert payouts_reconcile() == 1  # the disbursement enquiry
        payout.refresh_from_db()
    assert payout.status == Payout.Status.PAID
    assert payout.receipt in (charge["transactionId"], charge["extra"]["reference_id"])
    assert not payout.needs_review
    funded.refresh_from_db()
    assert funded.status == Patient.Status.IN_TREATMENT


def test_full_refund_of_an_airtel_donation_ends_refunded_with_airtels_answer(
    live_server, sandbox, patient, refund_maker, refund_checker
):
    created = donate(live_server, "0752123400")
    assert wait_for_status(live_server, created["reference"])["status"] == "completed"
    donation = Donation.objects.get(reference=created["reference"])
    with pytest.raises(RefundRefused, match="whole payment only"):
        refund_check(donation=donation, amount=Decimal("2000"), requested_by=refund_maker)
    requested = refund_request(
        donation=donation, amount=Decimal("5000"), reason="Paid twice", requested_by=refund_maker
    )
    refund = refund_approve(refund_id=requested.pk, approved_by=refund_checker)
    # Airtel answered SUCCESS (ESB000010) at once: that answer is the result, no person needs to confirm it.
    assert refund.status == Refund.Status.REFUNDED
    assert not refund.needs_review
    [simulated] = sandbox_charges(sandbox, "airtel", channel="refund")
    assert simulated["externalId"] == donation.payments.get().receipt  # refunded by the payment's airtel_money_id
    assert refund.provider_reference == refund.receipt == simulated["transactionId"]  # Airtel's id of the refund
    donation.refresh_from_db()
    assert donation.status == Donation.Status.REFUNDED
    amounts = sorted(Allocation.objects.filter(donation=donation).values_list("amount", flat=True))
    assert amounts == [Decimal("-5000"), Decimal("5000")]
    assert credited(patient) == 0
    assert status_of(live_server, donation.reference)["status"] == "refunded"
    call_command("verify_ledger")  # exits 1 (SystemExit) on drift
