"""The MTN MoMo simulator (/mtn) on its own, over real HTTP: what an MTN client would meet — tokens per product,
the checks on every call, each outcome row, MTN's own sandbox numbers, callbacks by PUT, the early 404 — and
our adapter driving it. Callbacks go to a tiny local HTTP server that records them."""

import base64
import json
import time
import uuid
from decimal import Decimal

import pytest
import requests
from django.core.cache import cache

from payments.providers.base import ChargeRequest, PaymentRef, PaymentStatus, PayoutRequest
from payments.providers.mtn.config import CONFIG as MTN_CONFIG
from payments.providers.mtn.provider import MtnProvider
from payments.sandbox.base import SandboxContext
from payments.sandbox.dispatch import CallbackDispatcher
from payments.sandbox.mtn import OFFICIAL_PAYEE, OFFICIAL_PAYER, MtnSimulator
from payments.sandbox.server import InspectionSimulator, SandboxServer, serve_in_thread
from payments.sandbox.store import SandboxStore
from payments.tests.standin import standin_site

TIME_SCALE = 0.05
CREDS = MTN_CONFIG.sandbox_credentials()
KEYS = {
    "collection": CREDS["collection_subscription_key"],
    "disbursement": CREDS["disbursement_subscription_key"],
}
FAILING_PAYERS = {n: r for n, r in OFFICIAL_PAYER.items() if r not in ("ONGOING", "DELAYED")}
FAILING_PAYEES = {n: r for n, r in OFFICIAL_PAYEE.items() if r not in ("ONGOING", "DELAYED")}


@pytest.fixture
def site():
    """The site: records every callback (method, path, JSON body) and answers as we do."""
    with standin_site({"status": "accepted", "message": "Callback received"}) as server:
        yield server


def start_sandbox(time_scale: float) -> SandboxServer:
    """The MTN simulator and the inspection endpoints on a free port."""
    store = SandboxStore()
    dispatcher = CallbackDispatcher(store, time_scale=time_scale)
    context = SandboxContext(
        store=store, dispatcher=dispatcher, callback_url="http://127.0.0.1:9/unused", time_scale=time_scale
    )
    server = SandboxServer(("127.0.0.1", 0), context, [MtnSimulator(context), InspectionSimulator(context)])
    serve_in_thread(server)
    return server


@pytest.fixture
def mtn():
    server = start_sandbox(TIME_SCALE)
    yield f"{server.base_url}/mtn", server
    server.shutdown()


def basic(user: str = CREDS["api_user"], key: str = CREDS["api_key"]) -> str:
    return "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()


def token(base: str, product: str = "collection") -> str:
    response = requests.post(
        f"{base}/{product}/token/",
        headers={"Authorization": basic(), "Ocp-Apim-Subscription-Key": KEYS[product]},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "access_token" and body["expires_in"] == 3600
    return body["access_token"]


def headers(base: str, product: str = "collection", **extra: str) -> dict[str, str]:
    """A product call's headers; `extra` overrides them (X_Target_Environment= is X-Target-Environment)."""
    sent = {
        "Authorization": f"Bearer {token(base, product)}",
        "Ocp-Apim-Subscription-Key": KEYS[product],
        "X-Target-Environment": "sandbox",
    }
    sent.update({name.replace("_", "-"): value for name, value in extra.items()})
    return sent


def callback(site, path: str = "/webhooks/mtn/collection/tok/") -> str:
    return f"http://127.0.0.1:{site.server_address[1]}{path}"


def body(phone: str, *, party: str = "payer", **overrides) -> dict:
    data = {
        "amount": "50000",
        "currency": "EUR",
        "externalId": "RHCI-DN-12-20261201101500",
        party: {"partyIdType": "MSISDN", "partyId": phone},
        "payerMessage": "Donation",
        "payeeNote": "Donation RHCI-DN-12-20261201101500",
    }
    data.update(overrides)
    return data


def post(base, site, path="collection/v1_0/requesttopay", *, phone="256772123456", product="collection", **kw):
    """A money-moving POST; (response, its X-Reference-Id)."""
    reference = kw.pop("reference", None) or str(uuid.uuid4())
    extra = {"X-Reference-Id": reference}
    if site is not None:
        extra["X-Callback-Url"] = kw.pop("callback_url", callback(site))
    payload = kw.pop("json", None) or body(phone, party="payee" if product == "disbursement" else "payer", **kw)
    response = requests.post(f"{base}/{path}", json=payload, headers=headers(base, product, **extra), timeout=5)
    return response, reference


def get_status(base, reference, path="collection/v1_0/requesttopay", product="collection") -> requests.Response:
    return requests.get(f"{base}/{path}/{reference}", headers=headers(base, product), timeout=5)


def wait_for(predicate, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def settled(base, reference, path="collection/v1_0/requesttopay", product="collection", seconds=5.0) -> dict:
    """The status object once it is visible and no longer pending."""
    answers: list[dict] = []

    def done() -> bool:
        response = get_status(base, reference, path, product)
        if response.status_code == 200:
            answers.append(response.json())
            return answers[-1]["status"] not in ("PENDING", "CREATED")
        return False

    assert wait_for(done, seconds)
    return answers[-1]


# --- tokens -------------------------------------------------------------------------------------------------


def test_tokens_per_product(mtn):
    base, _ = mtn
    assert token(base, "collection") != token(base, "disbursement")


@pytest.mark.parametrize(
    ("auth", "key", "data", "status", "answer"),
    [
        ("wrong", "collection", b"", 500, {"error": "login_failed"}),
        ("ok", "wrong", b"", 401, None),
        ("ok", "disbursement", b"", 401, None),  # another product's key
        ("ok", "collection", b'{"grant_type": "client_credentials"}', 400, None),  # a body
    ],
)
def test_token_refusals_as_mtn_answers_them(mtn, auth, key, data, status, answer):
    base, _ = mtn
    response = requests.post(
        f"{base}/collection/token/",
        data=data,
        headers={
            "Authorization": basic() if auth == "ok" else basic("nobody", "nothing"),
            "Ocp-Apim-Subscription-Key": KEYS.get(key, "wrong-key"),
        },
        timeout=5,
    )
    assert response.status_code == status
    if answer:
        assert response.json() == answer
    if status == 401:
        assert response.json()["message"].startswith("Access denied due to invalid subscription key")


# --- checks on every call ---------------------------------------------------------------------------------


def test_request_to_pay_needs_the_product_key_a_token_of_that_product_and_an_environment(mtn, site):
    base, server = mtn
    url = f"{base}/collection/v1_0/requesttopay"
    good = headers(base, X_Reference_Id=str(uuid.uuid4()))
    cases = [
        ({**good, "Authorization": "Bearer nonsense"}, 401),
        ({**good, "Authorization": f"Bearer {token(base, 'disbursement')}"}, 401),
        ({**good, "Ocp-Apim-Subscription-Key": KEYS["disbursement"]}, 401),
        ({**good, "X-Target-Environment": "mtnatlantis"}, 500),
        ({k: v for k, v in good.items() if k != "X-Target-Environment"}, 400),
    ]
    for sent, status in cases:
        response = requests.post(url, json=body("256772123456"), headers=sent, timeout=5)
        assert response.status_code == status, (sent, response.text)
    assert server.store.charges_json(provider="mtn") == []


def test_the_reference_id_must_be_a_new_uuid4(mtn, site):
    base, _ = mtn
    assert post(base, site, reference="RHCI-DN-12")[0].status_code == 400
    assert post(base, site, reference=str(uuid.uuid1()))[0].status_code == 400
    response, reference = post(base, site)
    assert response.status_code == 202 and response.content == b""
    again, _ = post(base, site, reference=reference)
    assert again.status_code == 409
    assert again.json() == {
        "code": "RESOURCE_ALREADY_EXIST",
        "message": "Duplicated reference id. Creation of resource failed.",
    }


@pytest.mark.parametrize(
    ("overrides", "status"),
    [
        ({"currency": "UGX"}, 500),  # the sandbox environment takes EUR only
        ({"amount": 50000}, 400),  # a string, as MTN's schema says
        ({"amount": "-5"}, 400),
        ({"payerMessage": "Amani's gift"}, 400),
        ({"payeeNote": "Tom & Jerry"}, 400),
        ({"payerMessage": "x" * 161}, 400),
        ({"payer": {"partyIdType": "MSISDN", "partyId": "+256772123456"}}, 400),
        ({"payer": {"partyIdType": "PHONE", "partyId": "256772123456"}}, 400),
    ],
)
def test_body_checks(mtn, site, overrides, status):
    base, server = mtn
    response, _ = post(base, site, **overrides)
    assert response.status_code == status, response.text
    if overrides.get("currency"):
        assert response.json() == {"code": "INVALID_CURRENCY", "message": "Currency not supported."}
    assert server.store.charges_json(provider="mtn") == []


def test_an_empty_callback_url_is_refused(mtn, site):
    base, _ = mtn
    assert post(base, site, callback_url="")[0].status_code == 400


def test_a_production_environment_takes_its_own_currency(mtn, site):
    base, _ = mtn
    reference = str(uuid.uuid4())
    response = requests.post(
        f"{base}/collection/v1_0/requesttopay",
        json=body("256772123456", currency="UGX"),
        headers=headers(base, X_Reference_Id=reference, X_Target_Environment="mtnuganda"),
        timeout=5,
    )
    assert response.status_code == 202


# --- the outcome table ------------------------------------------------------------------------------------

ROWS = {
    "99": ("SUCCESSFUL", "", 1),
    "01": ("FAILED", "NOT_ENOUGH_FUNDS", 1),
    "02": ("FAILED", "APPROVAL_REJECTED", 1),
    "04": ("SUCCESSFUL", "", 3),
    "06": ("SUCCESSFUL", "", 1),
}


@pytest.mark.parametrize("suffix", sorted(ROWS))
def test_outcome_rows_with_their_put_callbacks(mtn, site, suffix):
    base, server = mtn
    status, reason, copies = ROWS[suffix]
    response, reference = post(base, site, phone=f"2567721234{suffix}")
    assert response.status_code == 202
    answer = settled(base, reference)
    assert answer["status"] == status and answer.get("reason", "") == reason
    assert answer["externalId"] == "RHCI-DN-12-20261201101500" and answer["payer"]["partyId"].endswith(suffix)
    assert ("financialTransactionId" in answer) is (status == "SUCCESSFUL")
    assert wait_for(lambda: len(server.store.charges_json(provider="mtn")[0]["deliveries"]) >= copies)
    time.sleep(0.1)
    assert len(site.deliveries) == copies
    for method, path, sent, _ in site.deliveries:
        assert method == "PUT" and path == "/webhooks/mtn/collection/tok/"
        assert "referenceId" not in sent  # v1 callbacks do not carry it
        assert sent["status"] == status and sent.get("reason", "") == reason
    charge = server.store.charges_json(provider="mtn")[0]
    assert charge["transactionId"] == reference and len(charge["deliveries"]) == copies
    assert all(d["http_status"] == 200 for d in charge["deliveries"])


def test_row_03_no_answer_then_expired_without_callback(mtn, site):
    base, _ = mtn
    _, reference = post(base, site, phone="256772123403")
    assert wait_for(lambda: get_status(base, reference).status_code == 200)
    assert get_status(base, reference).json()["status"] == "PENDING"
    answer = settled(base, reference)
    assert answer["status"] == "FAILED" and answer["reason"] == "EXPIRED"
    assert site.deliveries == []


def test_row_05_success_without_any_callback(mtn, site):
    base, _ = mtn
    _, reference = post(base, site, phone="256772123405")
    assert settled(base, reference)["status"] == "SUCCESSFUL"
    time.sleep(0.2)
    assert site.deliveries == []


def test_row_07_failure_callback_first_then_success(mtn, site):
    base, _ = mtn
    _, reference = post(base, site, phone="256772123407")
    assert wait_for(lambda: len(site.deliveries) == 2)
    assert [sent["status"] for sent in site.bodies] == ["FAILED", "SUCCESSFUL"]
    assert settled(base, reference)["status"] == "SUCCESSFUL"  # the query tells the truth


def test_no_callback_url_no_callback(mtn, site):
    base, _ = mtn
    response, reference = post(base, None, phone="256772123499")
    assert response.status_code == 202
    assert settled(base, reference)["status"] == "SUCCESSFUL"
    time.sleep(0.2)
    assert site.deliveries == []


# --- MTN's own sandbox numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize("number", sorted(FAILING_PAYERS))
def test_official_payer_numbers_fail_with_their_documented_reason(mtn, site, number):
    base, _ = mtn
    _, reference = post(base, site, phone=number)
    answer = settled(base, reference)
    assert answer["status"] == "FAILED" and answer["reason"] == FAILING_PAYERS[number]
    assert wait_for(lambda: site.deliveries)
    assert site.deliveries[0].body["reason"] == FAILING_PAYERS[number]


def test_official_46733123453_stays_pending(mtn, site):
    base, _ = mtn
    _, reference = post(base, site, phone="46733123453")
    time.sleep(30 * TIME_SCALE + 0.3)  # longer than any scripted timeout
    assert get_status(base, reference).json()["status"] == "PENDING"
    assert site.deliveries == []


def test_official_46733123454_is_created_then_successful(mtn, site):
    base, _ = mtn
    _, reference = post(base, site, phone="46733123454")
    assert wait_for(lambda: get_status(base, reference).status_code == 200)
    assert get_status(base, reference).json()["status"] == "CREATED"
    assert settled(base, reference)["status"] == "SUCCESSFUL"
    assert wait_for(lambda: site.deliveries) and site.deliveries[0].body["status"] == "SUCCESSFUL"


@pytest.mark.parametrize("number", ["46733123455", "46733123457", "46733123463"])
def test_official_payee_numbers_on_transfers(mtn, site, number):
    base, _ = mtn
    response, reference = post(base, site, "disbursement/v1_0/transfer", phone=number, product="disbursement")
    assert response.status_code == 202
    answer = settled(base, reference, "disbursement/v1_0/transfer", "disbursement")
    assert answer["status"] == "FAILED" and answer["reason"] == FAILING_PAYEES[number]
    assert answer["payee"]["partyId"] == number


# --- the early 404 ---------------------------------------------------------------------------------------------


def test_the_status_get_answers_404_for_a_moment_after_the_202(site):
    server = start_sandbox(1.0)  # real time: the window is half a second
    try:
        base = f"{server.base_url}/mtn"
        get_status(base, str(uuid.uuid4()))  # tokens fetched before the clock matters
        _, reference = post(base, site, phone="256772123499")
        early = get_status(base, reference)
        assert early.status_code == 404
        assert early.json() == {"code": "RESOURCE_NOT_FOUND", "message": "Requested resource was not found."}
        time.sleep(0.6)
        assert get_status(base, reference).json()["status"] == "PENDING"
    finally:
        server.shutdown()


def test_an_unknown_reference_is_404(mtn):
    base, _ = mtn
    assert get_status(base, str(uuid.uuid4())).status_code == 404


# --- transfers and refunds --------------------------------------------------------------------------------------


def test_transfer_success_and_its_put_callback(mtn, site):
    base, _ = mtn
    cb = callback(site, "/webhooks/mtn/disbursement/")
    response, reference = post(
        base, site, "disbursement/v1_0/transfer", phone="256772123470", product="disbursement", callback_url=cb
    )
    assert response.status_code == 202
    answer = settled(base, reference, "disbursement/v1_0/transfer", "disbursement")
    assert answer["status"] == "SUCCESSFUL" and "payee" in answer and "payer" not in answer
    assert wait_for(lambda: site.deliveries)
    method, path, sent, _ = site.deliveries[0]
    assert (method, path, sent["status"]) == ("PUT", "/webhooks/mtn/disbursement/", "SUCCESSFUL")
    # A transfer is a Disbursement resource: the Collection product cannot see it.
    assert get_status(base, reference, "disbursement/v1_0/transfer", "collection").status_code == 401


def paid(base, site, phone="256772123499", amount="50000") -> str:
    _, reference = post(base, site, phone=phone, amount=amount)
    assert settled(base, reference)["status"] == "SUCCESSFUL"
    return reference


def refund(base, site, of: str, amount: str, version: str = "v1_0") -> tuple[requests.Response, str]:
    payload = {
        "amount": amount,
        "currency": "EUR",
        "externalId": "RHCI-RF-5-20261201101500",
        "payerMessage": "Donation refund",
        "payeeNote": "Donation refund",
        "referenceIdToRefund": of,
    }
    return post(
        base,
        site,
        f"disbursement/{version}/refund",
        product="disbursement",
        json=payload,
        callback_url=callback(site, "/webhooks/mtn/refund/rtok/"),
    )


def refund_status(base, reference) -> dict:
    return settled(base, reference, "disbursement/v1_0/refund", "disbursement")


@pytest.mark.parametrize("version", ["v1_0", "v2_0"])
def test_partial_refunds_of_a_paid_request_to_pay(mtn, site, version):
    base, _ = mtn
    payment = paid(base, site)
    first, first_ref = refund(base, site, payment, "20000", version)
    assert first.status_code == 202
    answer = refund_status(base, first_ref)
    assert answer["status"] == "SUCCESSFUL" and answer["payee"]["partyId"] == "256772123499"
    _, second_ref = refund(base, site, payment, "30000", version)
    assert refund_status(base, second_ref)["status"] == "SUCCESSFUL"
    _, third_ref = refund(base, site, payment, "1", version)  # nothing left to refund
    third = refund_status(base, third_ref)
    assert third["status"] == "FAILED" and third["reason"] == "NOT_ALLOWED"
    assert wait_for(lambda: any(d.path == "/webhooks/mtn/refund/rtok/" for d in site.deliveries))


def test_refunds_of_unknown_or_unpaid_payments_fail(mtn, site):
    base, _ = mtn
    _, unknown = refund(base, site, str(uuid.uuid4()), "100")
    assert refund_status(base, unknown)["reason"] == "RESOURCE_NOT_FOUND"
    _, failed_payment = post(base, site, phone="256772123401")
    settled(base, failed_payment)
    _, unpaid = refund(base, site, failed_payment, "100")
    assert refund_status(base, unpaid)["reason"] == "NOT_ALLOWED"
    assert refund(base, site, "not-a-uuid", "100")[0].status_code == 400


def test_inspection_lists_every_charge_and_delivery(mtn, site):
    base, server = mtn
    _, reference = post(base, site, phone="256772123499")
    assert wait_for(lambda: site.deliveries)
    listed = requests.get(f"{server.base_url}/_sandbox/transactions", params={"provider": "mtn"}, timeout=5).json()
    assert [c["transactionId"] for c in listed] == [reference]
    assert listed[0]["channel"] == "requesttopay" and listed[0]["outcome"] == "success"
    assert wait_for(lambda: requests.get(f"{server.base_url}/_sandbox/transactions", timeout=5).json()[0]["deliveries"])
    assert "_script" not in listed[0]["extra"]


# --- our adapter against the simulator ----------------------------------------------------------------------------


def test_our_adapter_pays_through_the_simulator(mtn, site):
    base, _ = mtn
    cache.clear()
    provider = MtnProvider(api_url=base, **{k: v for k, v in CREDS.items() if k != "api_url"})
    reference_id = provider.reference_before_request()
    result = provider.start_charge(
        ChargeRequest(
            reference="RHCI-DN-12-20261201101500",
            amount=Decimal("50000"),
            currency="EUR",
            msisdn="256772123499",
            callback_url=callback(site),
            description="Donation for Amani's surgery",
            provider_reference=reference_id,
        )
    )
    assert result.status == PaymentStatus.PENDING and result.provider_reference == reference_id
    ref = PaymentRef(reference="RHCI-DN-12-20261201101500", provider_reference=reference_id)
    assert wait_for(lambda: provider.fetch_status(ref).status == PaymentStatus.SUCCEEDED)
    assert wait_for(lambda: site.deliveries)
    parsed = provider.parse_callback("collection", json.dumps(site.deliveries[0].body).encode(), {})
    assert parsed.status == PaymentStatus.SUCCEEDED and parsed.our_reference == "RHCI-DN-12-20261201101500"
    assert parsed.amount == Decimal("50000") and parsed.receipt
    payout = provider.send_payout(
        PayoutRequest(
            reference="RHCI-PO-3-20261201101500",
            msisdn="256772123470",
            amount=Decimal("1000"),
            currency="EUR",
            result_url=callback(site, "/webhooks/mtn/disbursement/"),
            provider_reference=provider.payout_reference_before_request("RHCI-PO-1"),
        )
    )
    assert wait_for(
        lambda: provider.payout_status(reference="", provider_reference=payout.provider_reference) is not None
    )
    cache.clear()


def test_the_simulator_takes_the_adapters_sandbox_values():
    assert CREDS["api_user"] and CREDS["currency"] == "EUR"
    context = SandboxContext(store=SandboxStore(), dispatcher=None, callback_url="")  # type: ignore[arg-type]
    simulator = MtnSimulator(context)
    assert simulator.api_user == CREDS["api_user"]
    assert simulator.subscription_keys["disbursement"] == CREDS["disbursement_subscription_key"]
