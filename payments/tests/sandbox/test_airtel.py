"""The Airtel simulator (/airtel) over real HTTP: what an Airtel client meets, and the site's adapter against it.

A sandbox and a tiny callback receiver (playing the site) run in threads; no database. Time runs 20× faster
(time_scale 0.05): the 1 s / 10 s / 30 s script takes 0.05 s / 0.5 s / 1.5 s.
"""

import base64
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from payments.providers.airtel.callbacks import callback_hash as site_callback_hash
from payments.providers.airtel.config import CONFIG as AIRTEL_CONFIG
from payments.providers.airtel.provider import AirtelProvider
from payments.providers.base import (
    CallbackTrust,
    ChargeRequest,
    PaymentRef,
    PaymentStatus,
    PayoutRequest,
    ProviderError,
    RawCallback,
    RefundRequest,
)
from payments.sandbox.airtel import AirtelSimulator, callback_hash
from payments.sandbox.base import SandboxContext
from payments.sandbox.dispatch import CallbackDispatcher
from payments.sandbox.server import InspectionSimulator, SandboxServer, serve_in_thread
from payments.sandbox.store import SandboxStore
from payments.tests.standin import StandInSite, standin_site

TIME_SCALE = 0.05
CREDS = AIRTEL_CONFIG.sandbox_credentials()
SECRET = "airtel-sandbox-test-secret"


@pytest.fixture(scope="module")
def receiver() -> Iterator[StandInSite]:
    """Plays the site: records every callback and answers with Airtel's acknowledgement."""
    with standin_site(
        {"status": {"code": "200", "message": "Callback received successfully"}}, "/somewhere/else/"
    ) as site:
        yield site


def start(site: StandInSite, *, callback_secret: str = SECRET) -> SandboxServer:
    store = SandboxStore()
    dispatcher = CallbackDispatcher(store, time_scale=TIME_SCALE)
    context = SandboxContext(store=store, dispatcher=dispatcher, callback_url=site.url, time_scale=TIME_SCALE)
    simulators = [AirtelSimulator(context, callback_secret=callback_secret), InspectionSimulator(context)]
    server = SandboxServer(("127.0.0.1", 0), context, simulators)
    serve_in_thread(server)
    return server


@pytest.fixture(scope="module")
def module_sandbox(receiver: StandInSite) -> Iterator[SandboxServer]:
    server = start(receiver)
    yield server
    server.shutdown()


@pytest.fixture
def site(module_sandbox: SandboxServer, receiver: StandInSite) -> StandInSite:
    """The receiver, empty; the module's sandbox reset first, so the last test's scheduled callbacks are dropped."""
    module_sandbox.store.reset()
    receiver.clear()
    return receiver


@pytest.fixture
def sandbox(module_sandbox: SandboxServer, site: StandInSite) -> SandboxServer:
    return module_sandbox


@pytest.fixture
def base(sandbox: SandboxServer) -> str:
    return f"{sandbox.base_url}/airtel"


@pytest.fixture
def adapter(base: str) -> AirtelProvider:
    """The site's adapter, pointed at the simulator with its test values (the key is fetched from it)."""
    return AirtelProvider(api_url=base, **(CREDS | {"callback_secret": SECRET}))


def token(base: str) -> str:
    response = requests.post(
        f"{base}/auth/oauth2/token",
        json={
            "client_id": CREDS["client_id"],
            "client_secret": CREDS["client_secret"],
            "grant_type": "client_credentials",
        },
        timeout=5,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == "180"  # a string, as Airtel's docs copy
    return body["access_token"]


def headers(base: str, **overrides: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(base)}", "X-Country": "UG", "X-Currency": "UGX", **overrides}


def push_body(msisdn: str = "700000000", transaction_id: str = "RHCIDN1020260101120000", **overrides: Any) -> dict:
    transaction = {"amount": 5000, "country": "UG", "currency": "UGX", "id": transaction_id}
    body = {
        "reference": transaction_id,
        "subscriber": {"country": "UG", "currency": "UGX", "msisdn": msisdn},
        "transaction": transaction | overrides.pop("transaction", {}),
    }
    return body | overrides


def push(base: str, body: dict | None = None, *, version: str = "v1", **header_overrides: str) -> requests.Response:
    return requests.post(
        f"{base}/merchant/{version}/payments/",
        json=body or push_body(),
        headers=headers(base, **header_overrides),
        timeout=5,
    )


def enquiry(base: str, transaction_id: str) -> dict:
    response = requests.get(f"{base}/standard/v1/payments/{transaction_id}", headers=headers(base), timeout=5)
    assert response.status_code == 200
    return response.json()


def charge(reference: str, msisdn: str) -> ChargeRequest:
    return ChargeRequest(reference=reference, amount=Decimal("5000"), currency="UGX", msisdn=msisdn)


def wait_until(predicate, seconds: float = 4.0) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


# --- auth and routing -----------------------------------------------------------------------------------


def test_token_refuses_wrong_credentials(base):
    for body in (
        {"client_id": CREDS["client_id"], "client_secret": "wrong", "grant_type": "client_credentials"},
        {"client_id": CREDS["client_id"], "client_secret": CREDS["client_secret"], "grant_type": "password"},
    ):
        response = requests.post(f"{base}/auth/oauth2/token", json=body, timeout=5)
        assert response.status_code == 400
        assert response.json() == {"error_description": "Invalid client authentication", "error": "invalid_client"}


@pytest.mark.parametrize("authorization", ["", "Bearer not-a-token", "Basic abc"])
def test_business_calls_need_a_bearer_token(base, authorization):
    response = requests.post(
        f"{base}/merchant/v1/payments/",
        json=push_body(),
        headers={"Authorization": authorization, "X-Country": "UG", "X-Currency": "UGX"},
        timeout=5,
    )
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [({"X-Country": ""}, "ROUTER110"), ({"X-Country": "XX"}, "ROUTER006"), ({"X-Currency": "KES"}, "ROUTER112")],
)
def test_routing_headers_are_checked_first(base, overrides, code):
    response = push(base, **overrides)
    assert response.status_code == 400 and response.json()["status_code"] == code


@pytest.mark.parametrize(
    ("body", "result_code"),
    [
        (push_body(msisdn="256700000000"), "ESB000033"),  # with the country code
        (push_body(msisdn="0700000000"), "ESB000033"),
        (push_body(transaction={"amount": 5000.5}), "ESB000008"),  # UGX has no decimals
        (push_body(transaction={"amount": 0}), "ESB000008"),
        (push_body(transaction={"id": "RHCI-DN-1-20260101120000"}), "ESB000008"),  # letters and digits only
        (push_body(reference="a b"), "ESB000008"),
        (push_body(transaction={"currency": "KES"}), "ESB000035"),
    ],
)
def test_push_validation_like_airtel_http_200_success_false(base, body, result_code):
    response = push(base, body)
    assert response.status_code == 200
    status = response.json()["status"]
    assert status["success"] is False and status["result_code"] == result_code


def test_a_repeated_transaction_id_is_airtels_esb000041(base):
    assert push(base).json()["status"]["response_code"] == "DP00800001006"
    again = push(base).json()["status"]
    assert (again["result_code"], again["code"], again["success"]) == ("ESB000041", "500", False)


def test_the_encryption_key(base, sandbox):
    response = requests.get(f"{base}/v1/rsa/encryption-keys", headers=headers(base), timeout=5)
    assert response.status_code == 200 and response.json()["status"]["response_code"] == "DP02010001001"
    der = base64.b64decode(response.json()["data"]["key"])
    assert serialization.load_der_public_key(der) is not None


# --- the outcome table ----------------------------------------------------------------------------------


def test_success_push_callback_and_enquiry(base, site):
    accepted = push(base).json()
    assert accepted["data"]["transaction"] == {"id": "RHCIDN1020260101120000", "status": "SUCCESS"}
    assert accepted["status"]["result_code"] == "ESB000010" and accepted["status"]["response_code"] == "DP00800001006"
    pending = enquiry(base, "RHCIDN1020260101120000")["data"]["transaction"]["status"]
    assert pending in ("TIP", "TA")
    [(_, path, body, _)] = site.wait_for(1)
    assert path == "/webhooks/airtel/payment/"  # the site's route, on the host of the callback URL
    transaction = body["transaction"]
    assert transaction["id"] == "RHCIDN1020260101120000" and transaction["status_code"] == "TS"
    assert set(transaction) == {"id", "message", "status_code", "airtel_money_id"}
    answer = enquiry(base, "RHCIDN1020260101120000")
    assert answer["data"]["transaction"]["status"] == "TS"
    assert answer["data"]["transaction"]["airtel_money_id"] == transaction["airtel_money_id"]
    assert answer["status"]["success"] is False  # like Airtel's own example: read the state, not the flag


def test_callbacks_are_signed_with_the_callback_secret_and_the_site_accepts_the_hash(base, site):
    push(base)
    [body] = site.wait_for_bodies(1)
    assert body["hash"] == callback_hash(SECRET, body["transaction"]) == site_callback_hash(SECRET, body["transaction"])
    site_adapter = AirtelProvider(api_url=base, **(CREDS | {"callback_secret": SECRET}))
    raw = json.dumps(body).encode()
    assert site_adapter.authenticate_callback(RawCallback(kind="payment", body=raw)) == CallbackTrust.UNVERIFIED
    forged = AirtelProvider(api_url=base, **(CREDS | {"callback_secret": "another"}))
    assert forged.authenticate_callback(RawCallback(kind="payment", body=raw)) == CallbackTrust.REJECTED


def test_without_a_secret_callbacks_carry_no_hash(site):
    server = start(site, callback_secret="")
    try:
        push(f"{server.base_url}/airtel")
        [body] = site.wait_for_bodies(1)
        assert "hash" not in body
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    ("suffix", "status", "words"),
    [
        ("01", PaymentStatus.FAILED, "Not enough balance"),
        ("02", PaymentStatus.CANCELLED, "cancelled"),
    ],
)
def test_scripted_failures_reach_the_adapter(adapter, site, suffix, status, words):
    reference = f"RHCI-DN-2{suffix}-20260101120000"
    assert adapter.start_charge(charge(reference, f"2567000001{suffix}")).status == PaymentStatus.PENDING
    [body] = site.wait_for_bodies(1)
    assert body["transaction"]["status_code"] == "TF"
    callback = adapter.parse_callback("payment", json.dumps(body).encode(), {})
    queried = adapter.fetch_status(PaymentRef(reference=reference, provider_reference=""))
    assert callback.status == queried.status == status
    assert words in queried.message


def test_no_answer_sends_no_callback_and_the_enquiry_expires_it(adapter, site):
    reference = "RHCI-DN-303-20260101120000"
    adapter.start_charge(charge(reference, "256700000103"))
    ref = PaymentRef(reference=reference, provider_reference="")
    assert adapter.fetch_status(ref).status == PaymentStatus.PENDING
    assert wait_until(lambda: adapter.fetch_status(ref).status == PaymentStatus.EXPIRED, 4.0)
    assert site.deliveries == []


def test_three_concurrent_callbacks(base, site):
    push(base, push_body(msisdn="700000104"))
    received = site.wait_for_bodies(3)
    assert len(received) == 3 and len({json.dumps(b, sort_keys=True) for b in received}) == 1


def test_a_lost_callback_is_found_by_the_enquiry(adapter, site):
    reference = "RHCI-DN-505-20260101120000"
    adapter.start_charge(charge(reference, "256700000105"))
    ref = PaymentRef(reference=reference, provider_reference="")
    assert wait_until(lambda: adapter.fetch_status(ref).status == PaymentStatus.SUCCEEDED)
    time.sleep(0.2)
    assert site.deliveries == []


def test_a_late_callback(base, site):
    started = time.monotonic()
    push(base, push_body(msisdn="700000106"))
    assert site.wait_for(1, timeout=0.3) == []  # not yet at 1 s × 0.05
    assert len(site.wait_for(1, timeout=3)) == 1
    assert time.monotonic() - started >= 10 * TIME_SCALE * 0.9


def test_out_of_order_failure_then_success_and_the_enquiry_says_success(adapter, site):
    reference = "RHCI-DN-707-20260101120000"
    adapter.start_charge(charge(reference, "256700000107"))
    received = site.wait_for_bodies(2)
    assert [body["transaction"]["status_code"] for body in received] == ["TF", "TS"]
    assert (
        adapter.fetch_status(PaymentRef(reference=reference, provider_reference="")).status == PaymentStatus.SUCCEEDED
    )


def test_the_adapters_success_has_the_receipt_of_the_callback(adapter, site):
    reference = "RHCI-DN-808-20260101120000"
    adapter.start_charge(charge(reference, "256700000100"))
    [body] = site.wait_for_bodies(1)
    result = adapter.fetch_status(PaymentRef(reference=reference, provider_reference=""))
    assert result.status == PaymentStatus.SUCCEEDED
    assert result.receipt == result.provider_reference == body["transaction"]["airtel_money_id"]


# --- signing --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/merchant/v1/payments/", "/merchant/v2/payments/"])
def test_signed_pushes_on_either_path_are_accepted(base, site, path):
    signer = AirtelProvider(api_url=base, collection_path=path, sign_requests=True, **CREDS)
    assert signer.start_charge(charge("RHCI-DN-909-20260101120000", "256700000100")).status == PaymentStatus.PENDING


def test_a_signature_that_does_not_match_the_body_is_forbidden(base, sandbox):
    simulator = sandbox.simulators["airtel"]
    public_key = simulator.private_key.public_key()
    secret = f"{base64.b64encode(b'k' * 32).decode()}:{base64.b64encode(b'i' * 16).decode()}".encode()
    x_key = base64.b64encode(public_key.encrypt(secret, padding.PKCS1v15())).decode()
    response = push(base, version="v2", **{"x-key": x_key, "x-signature": base64.b64encode(b"x" * 32).decode()})
    status = response.json()["status"]
    assert status["response_code"] == "DP00800001026" and status["success"] is False


# --- disbursements and refunds --------------------------------------------------------------------------


def payout(msisdn: str, reference: str = "RHCI-PO-0123456789abcdef") -> PayoutRequest:
    return PayoutRequest(reference=reference, msisdn=msisdn, amount=Decimal("1000"), currency="UGX", result_url="")


def test_a_payout_is_paid_at_once_with_the_pin_encrypted_for_the_simulators_key(adapter):
    accepted = adapter.send_payout(payout("256700160185"))
    result = adapter.payout_status(reference="RHCI-PO-0123456789abcdef", provider_reference=accepted.provider_reference)
    assert result is not None and result.succeeded and result.receipt


def test_a_payout_pin_with_oaep_is_accepted_too(base):
    provider = AirtelProvider(api_url=base, pin_padding="oaep", **CREDS)
    assert provider.send_payout(payout("256700160185", "RHCI-PO-oaep")).provider_reference == "RHCIPOoaep"


def test_a_wrong_pin_is_refused(base):
    provider = AirtelProvider(api_url=base, **(CREDS | {"disbursement_pin": "0000"}))
    with pytest.raises(ProviderError, match="ROUTER115") as raised:
        provider.send_payout(payout("256700160185"))
    assert raised.value.ambiguous is False


def test_payout_insufficient_funds_is_a_refusal(adapter):
    with pytest.raises(ProviderError, match="DP00900001007") as raised:
        adapter.send_payout(payout("256700160101"))
    assert raised.value.ambiguous is False


def test_an_ambiguous_payout_is_settled_by_the_enquiry(adapter):
    with pytest.raises(ProviderError) as raised:
        adapter.send_payout(payout("256700160103"))
    assert raised.value.ambiguous is True
    first = adapter.payout_status(reference="RHCI-PO-0123456789abcdef", provider_reference="")
    assert first is not None and first.pending
    assert wait_until(
        lambda: not adapter.payout_status(reference="RHCI-PO-0123456789abcdef", provider_reference="").pending
    )


def test_a_processing_payout_then_paid(adapter):
    adapter.send_payout(payout("256700160106"))
    assert wait_until(
        lambda: adapter.payout_status(reference="RHCI-PO-0123456789abcdef", provider_reference="").succeeded
    )


def test_a_repeated_payout_id_is_never_taken_as_refused(adapter):
    adapter.send_payout(payout("256700160185"))
    with pytest.raises(ProviderError) as raised:
        adapter.send_payout(payout("256700160185"))
    assert raised.value.ambiguous is True


def test_a_refund_of_a_successful_payment_once(adapter, site):
    reference = "RHCI-DN-606-20260101120000"
    adapter.start_charge(charge(reference, "256700000100"))
    ref = PaymentRef(reference=reference, provider_reference="")
    assert wait_until(lambda: adapter.fetch_status(ref).status == PaymentStatus.SUCCEEDED)
    paid = adapter.fetch_status(ref)
    request = RefundRequest(
        reference="RHCI-RF-1", payment_reference=paid.provider_reference, amount=Decimal("5000"), currency="UGX",
        payment_receipt=paid.receipt,
    )  # fmt: skip
    accepted = adapter.send_refund(request)
    assert accepted.provider_reference.startswith("CI")
    with pytest.raises(ProviderError, match="already refunded"):
        adapter.send_refund(request)
    with pytest.raises(ProviderError, match="No Transaction Found"):
        adapter.send_refund(RefundRequest("RHCI-RF-2", "MP000000.0000.X00000", Decimal("5000"), "UGX"))


# --- what the sandbox shows ------------------------------------------------------------------------------


def test_charges_and_deliveries_are_inspectable(base, sandbox, site):
    push(base)
    site.wait_for(1)
    assert wait_until(
        lambda: requests.get(
            f"{sandbox.base_url}/_sandbox/transactions", params={"provider": "airtel"}, timeout=5
        ).json()[0]["deliveries"]
    )
    [record] = requests.get(
        f"{sandbox.base_url}/_sandbox/transactions",
        params={"provider": "airtel", "externalId": "RHCIDN1020260101120000"},
        timeout=5,
    ).json()
    assert record["status"] == "success" and record["outcome"] == "success" and record["msisdn"] == "700000000"
    assert record["deliveries"][0]["http_status"] == 200
    assert record["deliveries"][0]["url"].endswith("/webhooks/airtel/payment/")


def test_unknown_ids_and_paths(base):
    answer = requests.get(f"{base}/standard/v1/payments/NOPE12345", headers=headers(base), timeout=5).json()
    assert answer["status"]["result_code"] == "ESB000045"
    assert requests.get(f"{base}/nothing/here", timeout=5).status_code == 404
    assert requests.get(f"{base}/merchant/v1/payments/", timeout=5).status_code == 405


def test_the_pin_is_rsa_encrypted_not_sent_in_clear(base):
    """An unencrypted PIN (or noise) is refused by the gateway, as Airtel's ROUTER116/115 do."""
    body = {
        "payee": {"msisdn": "700160185"},
        "reference": "ABCD1234",
        "pin": "1234",
        "transaction": {"amount": 1, "id": "ABCD1234"},
    }
    response = requests.post(f"{base}/standard/v1/disbursements/", json=body, headers=headers(base), timeout=5)
    assert response.status_code == 400 and response.json()["status_code"] in ("ROUTER115", "ROUTER116")


def test_oaep_pins_decrypt(base, sandbox):
    key = sandbox.simulators["airtel"].private_key.public_key()
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303
    pin = base64.b64encode(key.encrypt(CREDS["disbursement_pin"].encode(), oaep)).decode()
    body = {
        "payee": {"msisdn": "700160185"},
        "reference": "ABCD1234",
        "pin": pin,
        "transaction": {"amount": 1, "id": "ABCD1234"},
    }
    response = requests.post(f"{base}/standard/v1/disbursements/", json=body, headers=headers(base), timeout=5)
    assert response.json()["status"]["response_code"] == "DP00900001001"


def test_registered_in_the_sandbox_and_listed_on_its_index():
    from payments.sandbox import run_sandbox
    from payments.sandbox.server import SIMULATOR_CLASSES

    assert AirtelSimulator in SIMULATOR_CLASSES
    server = run_sandbox(port=0, time_scale=TIME_SCALE)
    try:
        index = requests.get(f"{server.base_url}/", timeout=5).json()
        [airtel] = [s for s in index["simulators"] if s["name"] == "airtel"]
        assert airtel["prefixes"] == ["/airtel"] and airtel["client_id"] == CREDS["client_id"]
        assert airtel["callback_url"].endswith("/webhooks/airtel/payment/")
    finally:
        server.shutdown()
