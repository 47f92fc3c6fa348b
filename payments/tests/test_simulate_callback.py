"""`manage.py simulate_callback` on every rail: AzamPay, M-Pesa (STK), MTN MoMo, Airtel Money.

Three layers:
- the bodies, paths and methods it sends, caught by a tiny recording server (no database), and checked against
  the simulators' own callbacks (payments/sandbox/);
- against a live server and the site's real pipeline, with each provider's status query mocked by `responses`
  (the command's own requests pass through to the live server): the genuine callback is acknowledged with the
  provider's acknowledgement and credits once, duplicates credit once, forged ones are refused (401) and credit
  nothing, tampered amounts never credit what was not paid;
- the error paths: every bad input is a CommandError.
"""

import io
import json
import re
import time
from collections.abc import Iterator
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
import responses
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.cache import cache
from django.core.management import CommandError, call_command

from donor.models import Allocation
from donor.tests.factories import DonationFactory
from patients.tests.factories import PatientFactory
from payments.management.commands import simulate_callback
from payments.models import CallbackEvent, Payment
from payments.providers.airtel.client import airtel_id
from payments.providers.airtel.codes import ACK as AIRTEL_ACK
from payments.providers.airtel.config import CONFIG as AIRTEL_CONFIG
from payments.providers.mpesa.config import CONFIG as MPESA_CONFIG
from payments.providers.mtn.codes import ACK as MTN_ACK
from payments.providers.mtn.config import CONFIG as MTN_CONFIG
from payments.sandbox.airtel import AirtelSimulator, callback_hash
from payments.sandbox.base import SandboxContext
from payments.sandbox.dispatch import CallbackDispatcher
from payments.sandbox.mtn import MtnSimulator, Script
from payments.sandbox.outcomes import SUCCESS as SUCCESS_OUTCOME
from payments.sandbox.outcomes import Result
from payments.sandbox.server import run_sandbox
from payments.sandbox.store import Charge, SandboxStore
from payments.services.payments import payment_start
from payments.tests.factories import PaymentFactory
from payments.tests.fixtures import load_fixture
from payments.tests.helpers import credited
from payments.tests.standin import StandInSite, standin_site

AZAMPAY_PATH = "/api/v1.0/donors/payment/azampay/callback/"
AZAMPAY_ACK = {"success": True, "message": "Callback received"}
MPESA_ACK = {"ResultCode": 0, "ResultDesc": "Accepted"}
AIRTEL_SECRET = "test-airtel-callback-secret"
DARAJA = "https://daraja.test"
MOMO = "https://momo.test"
AIRTEL = "https://airtel.test"
CHECKOUT_ID = "ws_CO_01122026101500123456789"
X_REFERENCE_ID = "3f9c0a1b-2c3d-4e5f-8a9b-0c1d2e3f4a5b"
MONEY_ID = "MP261201.1015.A12345"
ANSWER_RE = re.compile(r"^#(\d+): HTTP (\d{3}) (.*)$", re.MULTILINE)


# --- a recording server (plays the site) ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def receiver() -> Iterator[StandInSite]:
    """Records every delivery in arrival order; answers like the AzamPay view."""
    with standin_site(AZAMPAY_ACK, AZAMPAY_PATH) as site:
        yield site


def run(*args: str) -> tuple[str, str]:
    """The command's stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    call_command("simulate_callback", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def answers(out: str) -> list[tuple[int, Any]]:
    """Every answer the command printed: (HTTP status, JSON body), in attempt order."""
    found = sorted((int(n), int(status), json.loads(body)) for n, status, body in ANSWER_RE.findall(out))
    return [(status, body) for _, status, body in found]


# --- without a database: what is sent ----------------------------------------------------------------------


@pytest.fixture
def fake_payment(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    payment = SimpleNamespace(
        reference="RHCI-DN-3-20250101120000",
        provider="azampay",
        provider_reference="ab" * 16,
        amount=Decimal("2500.00"),
        msisdn="255712345678",
        channel="Airtel",
    )
    monkeypatch.setattr(simulate_callback, "find_payment", lambda reference: payment)
    return payment


def test_simulate_callback_sends_the_payments_callback(
    fake_payment: SimpleNamespace, receiver: StandInSite, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.clear()
    call_command("simulate_callback", "--reference", fake_payment.reference, "--url", receiver.url)
    [callback] = receiver.wait_for_bodies(1)
    assert callback["utilityref"] == fake_payment.reference and callback["reference"] == fake_payment.provider_reference
    assert callback["amount"] == "2500" and callback["operator"] == "Airtel"
    assert callback["transactionstatus"] == "success"
    assert callback.get("password") == (settings.PAYMENT_PROVIDERS["azampay"]["callback_password"] or None)
    assert "HTTP 200" in capsys.readouterr().out


def test_simulate_callback_forges_tampers_and_duplicates(fake_payment: SimpleNamespace, receiver: StandInSite) -> None:
    receiver.clear()
    call_command(
        "simulate_callback",
        "--reference",
        fake_payment.reference,
        "--url",
        receiver.url,
        "--forge",
        "--amount",
        "1",
        "--status",
        "failure",
        "--duplicates",
        "3",
    )
    callbacks = receiver.wait_for_bodies(3)
    assert len(callbacks) == 3 and callbacks[0] == callbacks[2]
    assert callbacks[0]["password"].startswith("forged-") and callbacks[0]["amount"] == "1"
    assert callbacks[0]["transactionstatus"] == "failure"


def test_simulate_callback_reports_an_unreachable_site(fake_payment: SimpleNamespace) -> None:
    with pytest.raises(CommandError, match="Could not reach the site"):
        call_command(
            "simulate_callback",
            "--reference",
            fake_payment.reference,
            "--url",
            "http://127.0.0.1:9/callback/",
            "--timeout",
            "1",
        )


def test_azampay_output_is_as_before(fake_payment: SimpleNamespace, receiver: StandInSite) -> None:
    receiver.clear()
    out, _ = run("--reference", fake_payment.reference, "--url", receiver.url)
    [delivery] = receiver.wait_for(1)
    assert delivery.method == "POST" and delivery.path == AZAMPAY_PATH
    header, _, rest = out.partition("\n")
    assert header == f"POST {receiver.url} ×1"
    shown, end = json.JSONDecoder().raw_decode(rest)
    assert shown == {**delivery.body, "password": "***"}
    assert rest[end:] == '\n#1: HTTP 200 {"success": true, "message": "Callback received"}\n'  # no notes, as before
    assert settings.PAYMENT_PROVIDERS["azampay"]["callback_password"] not in out


def rail_payment(monkeypatch: pytest.MonkeyPatch, provider: str, **fields: Any) -> SimpleNamespace:
    defaults: dict[str, Any] = {
        "reference": "RHCI-DN-7-20261201101500",
        "provider": provider,
        "provider_reference": None,
        "amount": Decimal("1000.00"),
        "msisdn": "",
        "channel": "",
        "currency": "",
        "external_id": "",
    }
    payment = SimpleNamespace(**{**defaults, **fields})
    monkeypatch.setattr(simulate_callback, "find_payment", lambda reference: payment)
    return payment


@pytest.fixture
def site_is_receiver(receiver: StandInSite, settings: Any) -> StandInSite:
    settings.SITE_URL = receiver.base
    receiver.clear()
    return receiver


def test_mpesa_sends_the_stk_callback_to_the_base_path(
    monkeypatch: pytest.MonkeyPatch, site_is_receiver: StandInSite
) -> None:
    payment = rail_payment(
        monkeypatch,
        "mpesa",
        provider_reference=CHECKOUT_ID,
        msisdn="254712345678",
        currency="KES",
        amount=Decimal(1500),
    )
    out, _ = run("--reference", payment.reference)
    [delivery] = site_is_receiver.wait_for(1)
    assert (delivery.method, delivery.path) == ("POST", "/webhooks/mpesa/stkpush/")
    stk = delivery.body["Body"]["stkCallback"]
    assert stk["CheckoutRequestID"] == CHECKOUT_ID and stk["ResultCode"] == 0
    items = {item["Name"]: item.get("Value") for item in stk["CallbackMetadata"]["Item"]}
    assert items["Amount"] == 1500.0 and items["PhoneNumber"] == 254712345678
    assert re.fullmatch(r"[A-Z0-9]{10}", items["MpesaReceiptNumber"]) and "Balance" in items
    assert "base path" in out and "STK Push Query" in out  # says why it is not the payment's own URL


def test_mpesa_failure_tamper_and_forge(monkeypatch: pytest.MonkeyPatch, site_is_receiver: StandInSite) -> None:
    payment = rail_payment(monkeypatch, "mpesa", provider_reference=CHECKOUT_ID, msisdn="254712345678", currency="KES")
    run("--reference", payment.reference, "--status", "failure", "--message", "Request cancelled by user")
    run("--reference", payment.reference, "--amount", "1.50")
    out, _ = run("--reference", payment.reference, "--forge", "--duplicates", "2")
    failure, tampered, *forged = site_is_receiver.wait_for(4)
    assert failure.body["Body"]["stkCallback"]["ResultCode"] == 2001
    assert failure.body["Body"]["stkCallback"]["ResultDesc"] == "Request cancelled by user"
    assert "CallbackMetadata" not in failure.body["Body"]["stkCallback"]
    amount = tampered.body["Body"]["stkCallback"]["CallbackMetadata"]["Item"][0]
    assert amount == {"Name": "Amount", "Value": 1.5}
    assert len(forged) == 2 and forged[0].body == forged[1].body
    assert re.fullmatch(r"/webhooks/mpesa/stkpush/[A-Za-z0-9_-]{32}/", forged[0].path)
    assert "never handed out" in out


def test_mpesa_without_a_checkout_id_says_the_site_cannot_find_it(
    monkeypatch: pytest.MonkeyPatch, site_is_receiver: StandInSite
) -> None:
    payment = rail_payment(monkeypatch, "mpesa", msisdn="254712345678", currency="KES")
    _, err = run("--reference", payment.reference)
    [delivery] = site_is_receiver.wait_for(1)
    assert delivery.body["Body"]["stkCallback"]["CheckoutRequestID"].startswith("ws_CO_")
    assert "no M-Pesa CheckoutRequestID" in err and "404" in err


def test_mtn_puts_the_status_object_to_the_base_path(
    monkeypatch: pytest.MonkeyPatch, site_is_receiver: StandInSite
) -> None:
    payment = rail_payment(
        monkeypatch, "mtn", provider_reference=X_REFERENCE_ID, msisdn="46733123405", currency="EUR", amount=Decimal(50)
    )
    out, _ = run("--reference", payment.reference)
    run("--reference", payment.reference, "--method", "post", "--status", "failure", "--amount", "7")
    success, failure = site_is_receiver.wait_for(2)
    assert (success.method, success.path) == ("PUT", "/webhooks/mtn/collection/")
    assert success.body == {
        "financialTransactionId": success.body["financialTransactionId"],
        "externalId": payment.reference,
        "amount": "50",
        "currency": "EUR",
        "payer": {"partyIdType": "MSISDN", "partyId": "46733123405"},
        "payerMessage": f"Donation {payment.reference}",
        "payeeNote": f"Donation {payment.reference}",
        "status": "SUCCESSFUL",
    }
    assert "referenceId" not in success.body  # v1 callbacks carry none
    assert failure.method == "POST" and failure.body["status"] == "FAILED" and failure.body["amount"] == "7"
    assert failure.body["reason"] == "INTERNAL_PROCESSING_ERROR" and "financialTransactionId" not in failure.body
    assert out.startswith(f"PUT {site_is_receiver.base}/webhooks/mtn/collection/ ×1\n")
    assert "base path" in out and "status query" in out


def test_mtn_forge_goes_to_a_secret_url_never_handed_out(
    monkeypatch: pytest.MonkeyPatch, site_is_receiver: StandInSite
) -> None:
    payment = rail_payment(monkeypatch, "mtn", provider_reference=X_REFERENCE_ID, msisdn="46733123405", currency="EUR")
    run("--reference", payment.reference, "--forge")
    run("--reference", payment.reference, "--forge", "--url", site_is_receiver.base + "/elsewhere/")
    default, overridden = site_is_receiver.wait_for(2)
    assert default.method == "PUT" and re.fullmatch(r"/webhooks/mtn/collection/[A-Za-z0-9_-]{32}/", default.path)
    assert re.fullmatch(r"/elsewhere/[A-Za-z0-9_-]{32}/", overridden.path)


def test_airtel_signs_with_the_configured_secret_and_never_prints_it(
    monkeypatch: pytest.MonkeyPatch, site_is_receiver: StandInSite, settings: Any
) -> None:
    settings.PAYMENT_PROVIDERS = {
        **settings.PAYMENT_PROVIDERS,
        "airtel": {**settings.PAYMENT_PROVIDERS["airtel"], "callback_secret": AIRTEL_SECRET},
    }
    payment = rail_payment(
        monkeypatch, "airtel", msisdn="256712345678", currency="UGX", amount=Decimal(5000), external_id=""
    )
    out, err = run("--reference", payment.reference)
    run("--reference", payment.reference, "--forge")
    run("--reference", payment.reference, "--unsigned", "--status", "failure")
    signed, forged, unsigned = site_is_receiver.wait_for(3)
    assert (signed.method, signed.path) == ("POST", "/webhooks/airtel/payment/")
    transaction = signed.body["transaction"]
    assert transaction["id"] == airtel_id(payment.reference) == "RHCIDN720261201101500"
    assert transaction["status_code"] == "TS" and transaction["message"].startswith("Paid UGX 5,000 to")
    assert signed.body["hash"] == callback_hash(AIRTEL_SECRET, transaction)
    assert forged.body["hash"] != callback_hash(AIRTEL_SECRET, forged.body["transaction"])
    assert "hash" not in unsigned.body and unsigned.body["transaction"]["status_code"] == "TF"
    assert AIRTEL_SECRET not in out + err and signed.body["hash"] not in out + err
    assert '"hash": "***"' in out and "transaction enquiry" in out


def test_airtel_without_a_secret_sends_no_hash_and_says_so(
    monkeypatch: pytest.MonkeyPatch, site_is_receiver: StandInSite, settings: Any
) -> None:
    settings.PAYMENT_PROVIDERS = {
        **settings.PAYMENT_PROVIDERS,
        "airtel": {**settings.PAYMENT_PROVIDERS["airtel"], "callback_secret": ""},
    }
    payment = rail_payment(monkeypatch, "airtel", external_id="RHCIDN7X", provider_reference=MONEY_ID, currency="UGX")
    _, err = run("--reference", payment.reference)
    _, forged_err = run("--reference", payment.reference, "--forge")
    plain, forged = site_is_receiver.wait_for(2)
    assert "hash" not in plain.body and "AIRTEL_CALLBACK_SECRET is not set" in err
    assert plain.body["transaction"]["id"] == "RHCIDN7X" and plain.body["transaction"]["airtel_money_id"] == MONEY_ID
    assert "hash" in forged.body and "will not refuse" in forged_err


# --- the simulators' own callbacks: same shapes ----------------------------------------------------------------


@pytest.fixture
def sandbox_context() -> Iterator[SandboxContext]:
    store = SandboxStore()
    dispatcher = CallbackDispatcher(store)
    yield SandboxContext(store=store, dispatcher=dispatcher, callback_url="http://site.test" + AZAMPAY_PATH)
    dispatcher.stop()


def test_mtn_body_is_the_simulators_status_object(sandbox_context: SandboxContext) -> None:
    payment = SimpleNamespace(
        reference="RHCI-DN-7-20261201101500", amount=Decimal(50), currency="EUR", msisdn="46733123405"
    )
    charge = Charge(
        provider="mtn",
        transaction_id=X_REFERENCE_ID,
        external_id=payment.reference,
        msisdn=payment.msisdn,
        amount="50",
        currency="EUR",
        channel="requesttopay",
        outcome=SUCCESS_OUTCOME,
        extra={
            "party": "payer",
            "payerMessage": f"Donation {payment.reference}",
            "payeeNote": f"Donation {payment.reference}",
            "financialTransactionId": "123456789",
            "_script": Script(SUCCESS_OUTCOME),
        },
    )
    simulator = MtnSimulator(sandbox_context)
    for result, success in ((Result.SUCCESS, True), (Result.FAILED, False)):
        ours = simulate_callback.mtn_callback_for_payment(payment, success=success)  # type: ignore[arg-type]
        theirs = simulator.status_body(charge, result)
        ours.pop("financialTransactionId", None), theirs.pop("financialTransactionId", None)
        assert ours == theirs


def test_airtel_body_is_the_simulators_callback(sandbox_context: SandboxContext) -> None:
    payment = SimpleNamespace(
        reference="RHCI-DN-7-20261201101500",
        external_id="RHCIDN720261201101500",
        provider_reference=MONEY_ID,
        amount=Decimal(5000),
        currency="UGX",
    )
    charge = Charge(
        provider="airtel",
        transaction_id=MONEY_ID,
        external_id=payment.external_id,
        msisdn="712345678",
        amount="5000",
        currency="UGX",
        channel="ussd_push",
        outcome=SUCCESS_OUTCOME,
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    simulator = AirtelSimulator(sandbox_context, callback_secret=AIRTEL_SECRET, private_key=key)
    for result, success in ((Result.SUCCESS, True), (Result.FAILED, False)):
        ours = simulate_callback.airtel_callback_for_payment(
            payment,  # type: ignore[arg-type]
            success=success,
            hash_key=AIRTEL_SECRET,
        )
        assert ours == simulator.callback_body(charge, result)


# --- the error paths -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "args", "message"),
    [
        ("azampay", ["--duplicates", "0"], "--duplicates must be between 1 and 50"),
        ("azampay", ["--duplicates", "51"], "--duplicates must be between 1 and 50"),
        ("azampay", ["--timeout", "0"], "--timeout must be a positive"),
        ("azampay", ["--unsigned"], "--unsigned is for Airtel Money"),
        ("mpesa", ["--no-password"], "--no-password is for AzamPay"),
        ("mtn", ["--no-password"], "--no-password is for AzamPay"),
        ("airtel", ["--no-password"], r"--no-password is for AzamPay.*\(Airtel Money: --unsigned\)"),
        ("mpesa", ["--unsigned"], "--unsigned is for Airtel Money"),
        ("azampay", ["--amount", "lots"], "--amount must be a number"),
        ("mtn", ["--amount", "NaN"], "--amount must be a number"),
        ("airtel", ["--amount", "1"], "Airtel Money's callback carries no amount"),
        ("mpesa", ["--amount", "1", "--status", "failure"], "failure callback carries no amount"),
        ("mtn", ["--message", "hello"], "has no message"),
        ("airtel", ["--method", "PUT"], "sent by POST; the site answers PUT with 405"),
        ("azampay", ["--method", "DELETE"], "invalid choice"),
        ("azampay", ["--status", "maybe"], "invalid choice"),
        ("azampay", ["--forge", "--no-password"], "not allowed with argument"),
        ("airtel", ["--forge", "--unsigned"], "not allowed with argument"),
    ],
)
def test_nonsense_options_are_refused(
    monkeypatch: pytest.MonkeyPatch, receiver: StandInSite, provider: str, args: list[str], message: str
) -> None:
    payment = rail_payment(monkeypatch, provider, currency="TZS")
    receiver.clear()
    with pytest.raises(CommandError, match=message):
        run("--reference", payment.reference, "--url", receiver.url, *args)
    assert receiver.wait_for_bodies(1, timeout=0.2) == []  # nothing was sent


def test_a_provider_it_cannot_speak_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    payment = rail_payment(monkeypatch, "paypal")
    with pytest.raises(CommandError, match="speaks AzamPay, M-Pesa, MTN MoMo, Airtel Money; .* 'paypal' payment"):
        run("--reference", payment.reference)


@pytest.mark.django_db
def test_an_unknown_reference_is_refused() -> None:
    with pytest.raises(CommandError, match="No payment or donation has the reference 'RHCI-DN-404-x'"):
        run("--reference", "RHCI-DN-404-x")


def test_the_reference_is_required() -> None:
    with pytest.raises(CommandError, match="--reference"):
        call_command("simulate_callback")


def test_help_says_where_stk_and_mtn_callbacks_go(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        call_command("simulate_callback", "--help")
    text = " ".join(capsys.readouterr().out.split())
    assert "/webhooks/mpesa/stkpush/" in text and "/webhooks/mtn/collection/" in text
    assert "keyed digests" in text and "status query" in text


# --- against the live site and its real pipeline -------------------------------------------------------------


@pytest.fixture
def site(live_server: Any, settings: Any) -> Iterator[Any]:
    """The live site, every rail pointed at a mocked far side (`responses`, process-wide, so the site's status
    queries are caught); the command's requests pass through to the live server."""
    cache.clear()
    providers = settings.PAYMENT_PROVIDERS
    settings.PAYMENT_PROVIDERS = {
        **providers,
        "mpesa": {
            **providers["mpesa"],
            "consumer_key": "k",
            "consumer_secret": "s",
            "passkey": "p",
            "api_url": DARAJA,
            "callback_url": "",
            "trust_callbacks": False,
            "allowed_ips": [],
            "ip_allowlist_strict": False,
        },
        "mtn": {
            **providers["mtn"],
            "api_url": MOMO,
            "api_user": "aa3f6853-57f2-4348-a29c-ee1376fc28d5",
            "api_key": "k",
            "collection_subscription_key": "c",
            "disbursement_subscription_key": "d",
            "target_environment": "sandbox",
            "currency": "EUR",
        },
        "airtel": {
            **providers["airtel"],
            "api_url": AIRTEL,
            "client_id": "id",
            "client_secret": "s",
            "country": "UG",
            "currency": "UGX",
            "callback_secret": AIRTEL_SECRET,
        },
    }
    settings.SITE_URL = live_server.url
    settings.PAYMENTS_APPLY_TRUSTED_CALLBACKS = True
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru(live_server.url)
        mock.get(f"{DARAJA}/oauth/v1/generate", json=load_fixture("mpesa", "token_success.json"))
        mock.post(f"{MOMO}/collection/token/", json=load_fixture("mtn", "token_success.json"))
        mock.post(f"{AIRTEL}/auth/oauth2/token", json=load_fixture("airtel", "token_success.json"))
        yield mock
    cache.clear()


RAIL_SETUP = {
    # provider: (currency, amount, payer, provider_reference)
    "azampay": ("TZS", Decimal(5000), "255712345678", "ab" * 16),
    "mpesa": ("KES", Decimal(1000), "254712345678", CHECKOUT_ID),
    "mtn": ("EUR", Decimal(50), "46733123405", X_REFERENCE_ID),
    "airtel": ("UGX", Decimal(5000), "256712345678", None),
}
ACKS = {"azampay": AZAMPAY_ACK, "mpesa": MPESA_ACK, "mtn": MTN_ACK, "airtel": AIRTEL_ACK}
QUERY_URLS = {
    "mpesa": f"{DARAJA}/mpesa/stkpushquery/v1/query",
    "mtn": f"{MOMO}/collection/v1_0/requesttopay/{X_REFERENCE_ID}",
}


def make_payment(provider: str) -> Payment:
    currency, amount, msisdn, provider_reference = RAIL_SETUP[provider]
    patient = PatientFactory(currency=currency, funding_goal=Decimal(10_000_000))
    donation = DonationFactory(patient=patient, amount=amount, currency=currency)
    return PaymentFactory(
        donation=donation,
        provider=provider,
        channel="Mpesa" if provider == "azampay" else "",
        msisdn=msisdn,
        external_id=airtel_id(donation.reference) if provider == "airtel" else donation.reference,
        provider_reference=provider_reference,
    )


def provider_says(mock: responses.RequestsMock, payment: Payment, status: str) -> str:
    """Mock the provider's status query of `payment` ("success", "failure", "pending"); its URL."""
    if payment.provider == "mpesa":
        code = {"success": "0", "failure": "1", "pending": "4999"}[status]
        mock.post(
            QUERY_URLS["mpesa"],
            json={**load_fixture("mpesa", "query_success.json"), "CheckoutRequestID": CHECKOUT_ID, "ResultCode": code},
        )
        return QUERY_URLS["mpesa"]
    if payment.provider == "mtn":
        body = {**load_fixture("mtn", "status_successful.json"), "externalId": payment.reference, "amount": "50"}
        if status == "failure":
            body = {**body, "status": "FAILED", "reason": "NOT_ENOUGH_FUNDS"}
            body.pop("financialTransactionId")
        elif status == "pending":
            body = {**body, "status": "PENDING"}
            body.pop("financialTransactionId")
        mock.get(QUERY_URLS["mtn"], json=body)
        return QUERY_URLS["mtn"]
    assert payment.provider == "airtel"
    url = f"{AIRTEL}/standard/v1/payments/{payment.external_id}"
    transaction = {"id": payment.external_id, "airtel_money_id": MONEY_ID}
    transaction |= {
        "success": {"status": "TS", "message": "success"},
        "failure": {"status": "TF", "message": "Not enough balance"},
        "pending": {"status": "TIP", "message": "In process"},
    }[status]
    mock.get(url, json={**load_fixture("airtel", "enquiry_success.json"), "data": {"transaction": transaction}})
    return url


def queries(mock: responses.RequestsMock, url: str) -> int:
    return sum(1 for call in mock.calls if call.request.url.split("?")[0] == url)


def allocations(payment: Payment) -> int:
    return Allocation.objects.filter(donation_id=payment.donation_id).count()


e2e = pytest.mark.django_db(transaction=True)


@e2e
@pytest.mark.parametrize("provider", ["azampay", "mpesa", "mtn", "airtel"])
def test_the_genuine_callback_is_acknowledged_and_credits_once(site: responses.RequestsMock, provider: str) -> None:
    payment = make_payment(provider)
    query = provider_says(site, payment, "success") if provider != "azampay" else ""
    out, _ = run("--reference", payment.donation.reference)
    assert answers(out) == [(200, ACKS[provider])]
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED and not payment.needs_review
    assert credited(payment) == payment.amount and allocations(payment) == 1
    if query:  # an unauthenticated rail: the status query confirmed it, once
        assert queries(site, query) == 1
    if provider == "airtel":
        assert payment.receipt == MONEY_ID  # the enquiry's id, not the made-up one of the callback
    assert CallbackEvent.objects.get(payment=payment).status == CallbackEvent.Status.PROCESSED


@e2e
@pytest.mark.parametrize("provider", ["azampay", "mpesa", "mtn", "airtel"])
def test_duplicates_credit_once(site: responses.RequestsMock, provider: str) -> None:
    payment = make_payment(provider)
    if provider != "azampay":
        provider_says(site, payment, "success")
    out, _ = run("--reference", payment.reference, "--duplicates", "5")
    assert answers(out) == [(200, ACKS[provider])] * 5
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert credited(payment) == payment.amount and allocations(payment) == 1
    events = CallbackEvent.objects.filter(payment=payment)
    assert events.count() == 5 and events.filter(status=CallbackEvent.Status.PROCESSED).count() == 1


@e2e
@pytest.mark.parametrize(
    ("provider", "flag"),
    [
        ("azampay", "--forge"),
        ("azampay", "--no-password"),
        ("mpesa", "--forge"),
        ("mtn", "--forge"),
        ("airtel", "--forge"),
        ("airtel", "--unsigned"),
    ],
)
def test_forged_callbacks_are_refused_and_credit_nothing(
    site: responses.RequestsMock, provider: str, flag: str
) -> None:
    payment = make_payment(provider)
    query = provider_says(site, payment, "success") if provider != "azampay" else ""
    out, _ = run("--reference", payment.reference, flag, "--duplicates", "2")
    assert [(status, body["code"]) for status, body in answers(out)] == [(401, "AUTH_REQUIRED")] * 2
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert credited(payment) == 0 and allocations(payment) == 0
    if query:
        assert queries(site, query) == 0  # refused before anything asked the provider
    events = CallbackEvent.objects.filter(provider=provider)
    assert events.count() == 2 and {e.status for e in events} == {CallbackEvent.Status.REJECTED}


@e2e
def test_a_tampered_azampay_amount_goes_to_review(site: responses.RequestsMock) -> None:
    payment = make_payment("azampay")
    out, _ = run("--reference", payment.reference, "--amount", "50")
    assert answers(out) == [(200, AZAMPAY_ACK)]
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING and credited(payment) == 0
    event = CallbackEvent.objects.get(payment=payment)
    assert event.status == CallbackEvent.Status.REVIEW and "amount 50 is not 5000" in event.error


@e2e
@pytest.mark.parametrize("provider", ["mpesa", "mtn"])
def test_a_tampered_amount_on_an_unsigned_rail_never_credits_the_claim(
    site: responses.RequestsMock, provider: str
) -> None:
    """M-Pesa and MTN callbacks are only triggers: the site applies what the status query says. The claimed
    amount is never credited: the payment is credited once, with what the provider confirms was paid."""
    payment = make_payment(provider)
    provider_says(site, payment, "success")
    out, _ = run("--reference", payment.reference, "--amount", "1")
    assert answers(out) == [(200, ACKS[provider])]
    payment.refresh_from_db()
    assert credited(payment) == payment.amount != Decimal(1) and allocations(payment) == 1


@e2e
@pytest.mark.parametrize("provider", ["mpesa", "mtn"])
def test_a_tampered_amount_the_provider_does_not_confirm_goes_to_review(
    site: responses.RequestsMock, provider: str
) -> None:
    payment = make_payment(provider)
    provider_says(site, payment, "pending")
    out, _ = run("--reference", payment.reference, "--amount", "999999")
    assert answers(out) == [(200, ACKS[provider])]
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING and credited(payment) == 0
    assert CallbackEvent.objects.get(payment=payment).status == CallbackEvent.Status.REVIEW


@e2e
@pytest.mark.parametrize("provider", ["mpesa", "mtn", "airtel"])
def test_a_failure_callback_is_settled_by_the_status_query(site: responses.RequestsMock, provider: str) -> None:
    payment = make_payment(provider)
    provider_says(site, payment, "failure")
    out, _ = run("--reference", payment.reference, "--status", "failure")
    assert answers(out) == [(200, ACKS[provider])]
    payment.refresh_from_db()
    assert payment.status == Payment.Status.FAILED and credited(payment) == 0


@e2e
@pytest.mark.parametrize("provider", ["mpesa", "mtn", "airtel"])
def test_a_success_the_provider_still_calls_pending_is_held_for_review(
    site: responses.RequestsMock, provider: str
) -> None:
    payment = make_payment(provider)
    provider_says(site, payment, "pending")
    out, _ = run("--reference", payment.reference)
    assert answers(out) == [(200, ACKS[provider])]
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING and credited(payment) == 0
    assert CallbackEvent.objects.get(payment=payment).status == CallbackEvent.Status.REVIEW


@e2e
def test_mtn_by_post_is_accepted_too(site: responses.RequestsMock) -> None:
    payment = make_payment("mtn")
    provider_says(site, payment, "success")
    out, _ = run("--reference", payment.reference, "--method", "POST")
    assert out.startswith("POST ") and answers(out) == [(200, MTN_ACK)]
    assert credited(payment) == payment.amount


@e2e
def test_an_mpesa_payment_without_a_checkout_id_is_not_found_at_the_base_path(site: responses.RequestsMock) -> None:
    payment = make_payment("mpesa")
    Payment.objects.filter(pk=payment.pk).update(provider_reference=None)
    out, _ = run("--reference", payment.reference)
    assert [(status, body["code"]) for status, body in answers(out)] == [(404, "NOT_FOUND")]
    assert credited(payment) == 0


@e2e
def test_secrets_are_never_printed(site: responses.RequestsMock) -> None:
    azampay, airtel = make_payment("azampay"), make_payment("airtel")
    provider_says(site, airtel, "success")
    printed = "".join(run("--reference", azampay.reference)) + "".join(run("--reference", airtel.reference))
    password = settings.PAYMENT_PROVIDERS["azampay"]["callback_password"]
    assert password and password not in printed and AIRTEL_SECRET not in printed
    stored = json.loads(CallbackEvent.objects.get(provider="airtel").body)
    assert "hash" not in stored  # and the site never stores the hash either


# --- against the live site and the provider sandbox (the simulators answer the status queries) -----------------

SANDBOX_RAILS = {
    # provider: (currency, amount, payer ending in 05: paid, and the simulator never calls back)
    "mpesa": ("KES", Decimal(1000), "254712345605"),
    "mtn": ("EUR", Decimal(50), "46733123405"),
    "airtel": ("UGX", Decimal(5000), "256712345605"),
}


@pytest.fixture
def sandbox_site(live_server: Any, settings: Any) -> Iterator[Any]:
    """The live site with M-Pesa, MTN and Airtel pointed at `manage.py sandbox` (run in a thread, 20× faster)."""
    cache.clear()
    server = run_sandbox(port=0, callback_url=live_server.url + AZAMPAY_PATH, time_scale=0.05)
    configs = {"mpesa": (MPESA_CONFIG, "/daraja"), "mtn": (MTN_CONFIG, "/mtn"), "airtel": (AIRTEL_CONFIG, "/airtel")}
    providers = dict(settings.PAYMENT_PROVIDERS)
    for code, (config, prefix) in configs.items():
        providers[code] = {**providers[code], **config.sandbox_credentials(), "api_url": server.base_url + prefix}
    providers["mpesa"] |= {"callback_url": "", "trust_callbacks": False, "allowed_ips": []}
    settings.PAYMENT_PROVIDERS = providers
    settings.SITE_URL = live_server.url
    yield server
    server.shutdown()
    cache.clear()


def sandbox_charge(server: Any, provider: str) -> dict[str, Any]:
    [charge] = server.store.charges_json(provider=provider)
    return charge


@e2e
@pytest.mark.parametrize("provider", ["mpesa", "mtn", "airtel"])
def test_the_simulators_confirm_what_the_command_sends(sandbox_site: Any, provider: str) -> None:
    currency, amount, phone = SANDBOX_RAILS[provider]
    patient = PatientFactory(currency=currency, funding_goal=Decimal(10_000_000))
    donation = DonationFactory(patient=patient, amount=amount, currency=currency)
    payment = payment_start(donation=donation, provider_code=provider, msisdn=phone)
    deadline = time.monotonic() + 10
    while sandbox_charge(sandbox_site, provider)["status"] != "success" and time.monotonic() < deadline:
        time.sleep(0.05)  # the payer "paid"; no callback will ever come (the 05 row of docs/api.md)

    forged, _ = run("--reference", donation.reference, "--forge")
    assert [(status, body["code"]) for status, body in answers(forged)] == [(401, "AUTH_REQUIRED")]
    assert credited(payment) == 0
    out, _ = run("--reference", donation.reference, "--duplicates", "3")
    assert answers(out) == [(200, ACKS[provider])] * 3
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED and not payment.needs_review
    assert credited(payment) == amount and allocations(payment) == 1
    charge = sandbox_charge(sandbox_site, provider)
    assert charge["deliveries"] == [] and charge["extra"]["queries"] >= 1  # the simulator's status query decided
