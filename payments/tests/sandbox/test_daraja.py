"""The Daraja simulator (/daraja) on its own, over real HTTP: what a Daraja client would meet.

Callbacks go to a stand-in for our site that records them (payments/tests/standin.py).
"""

import base64
import json
import time

import pytest
import requests

from payments.providers.mpesa.config import CONFIG as MPESA_CONFIG
from payments.sandbox.server import run_sandbox
from payments.tests.standin import standin_site

TIME_SCALE = 0.05
CREDS = MPESA_CONFIG.sandbox_credentials()
TIMESTAMP = "20260101120000"


@pytest.fixture
def site():
    with standin_site({"ResultCode": 0, "ResultDesc": "Accepted"}) as server:
        yield server


@pytest.fixture
def simulator():
    """The Daraja simulator on a free port: (its /daraja base URL, the server)."""
    server = run_sandbox(port=0, time_scale=TIME_SCALE)
    yield f"{server.base_url}/daraja", server
    server.shutdown()


def password(timestamp: str = TIMESTAMP, passkey: str = CREDS["passkey"]) -> str:
    return base64.b64encode(f"{CREDS['shortcode']}{passkey}{timestamp}".encode()).decode()


def token(base: str) -> str:
    response = requests.get(
        f"{base}/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        auth=(CREDS["consumer_key"], CREDS["consumer_secret"]),
        timeout=5,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == "3599"
    return body["access_token"]


def push_body(site, phone="254712345678", **overrides) -> dict:
    body = {
        "BusinessShortCode": CREDS["shortcode"],
        "Password": password(),
        "Timestamp": TIMESTAMP,
        "TransactionType": "CustomerPayBillOnline",
        "Amount": 100,
        "PartyA": phone,
        "PartyB": CREDS["shortcode"],
        "PhoneNumber": phone,
        "CallBackURL": f"http://127.0.0.1:{site.server_address[1]}/webhooks/mpesa/stkpush/tok/",
        "AccountReference": "DN1",
        "TransactionDesc": "Donation",
    }
    body.update(overrides)
    return body


def push(base, site, **kw) -> requests.Response:
    return requests.post(
        f"{base}/mpesa/stkpush/v1/processrequest",
        json=push_body(site, **kw),
        headers={"Authorization": f"Bearer {token(base)}"},
        timeout=5,
    )


def query(base, checkout_id) -> requests.Response:
    return requests.post(
        f"{base}/mpesa/stkpushquery/v1/query",
        json={
            "BusinessShortCode": CREDS["shortcode"],
            "Password": password(),
            "Timestamp": TIMESTAMP,
            "CheckoutRequestID": checkout_id,
        },
        headers={"Authorization": f"Bearer {token(base)}"},
        timeout=5,
    )


def wait_for(predicate, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def test_token_refuses_bad_credentials_and_grant_type(simulator):
    base, _ = simulator
    bad = requests.get(f"{base}/oauth/v1/generate", params={"grant_type": "client_credentials"}, auth=("x", "y"))
    assert bad.status_code == 400 and bad.json()["errorCode"] == "400.008.01"
    grant = requests.get(f"{base}/oauth/v1/generate", params={"grant_type": "password"}, auth=("x", "y"))
    assert grant.json()["errorCode"] == "400.008.02"


def test_push_without_token_is_invalid_access_token(simulator, site):
    base, _ = simulator
    response = requests.post(f"{base}/mpesa/stkpush/v1/processrequest", json=push_body(site), timeout=5)
    assert response.status_code == 404
    assert response.json()["errorCode"] == "404.001.03"


@pytest.mark.parametrize(
    ("overrides", "status", "message"),
    [
        ({"Amount": "10.00"}, 400, "Invalid Amount"),
        ({"Amount": 10.5}, 400, "Invalid Amount"),
        ({"Amount": 0}, 400, "Invalid Amount"),
        ({"PartyA": "0712345678"}, 400, "Invalid PartyA"),
        ({"PhoneNumber": "255712345678"}, 400, "Invalid PhoneNumber"),
        ({"AccountReference": "ABCDEFGHIJKLM"}, 400, "Invalid AccountReference"),
        ({"TransactionDesc": "ABCDEFGHIJKLMN"}, 400, "Invalid Remarks"),
        ({"TransactionDesc": None}, 400, "Invalid Remarks"),
        ({"CallBackURL": " https://x.example/cb"}, 400, "Invalid CallBackURL"),
        ({"TransactionType": "CustomerPayBill"}, 400, "Invalid TransactionType"),
        ({"Password": password(passkey="wrong")}, 500, "Wrong credentials"),
        ({"Timestamp": "20260101120001"}, 500, "Wrong credentials"),
    ],
)
def test_push_validation_like_daraja(simulator, site, overrides, status, message):
    base, server = simulator
    response = push(base, site, **overrides)
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"requestId", "errorCode", "errorMessage"}
    assert message in body["errorMessage"]
    assert server.store.charges_json(provider="mpesa") == []


def test_success_push_callback_and_query(site):
    # Real time here (decision after ~1 s): two pending answers must come before the decision even on a busy box.
    server = run_sandbox(port=0, time_scale=1.0)
    try:
        check_success_push_callback_and_query(f"{server.base_url}/daraja", site)
    finally:
        server.shutdown()


def check_success_push_callback_and_query(base, site):
    response = push(base, site)
    assert response.status_code == 200
    accepted = response.json()
    assert accepted["ResponseCode"] == "0"
    checkout_id = accepted["CheckoutRequestID"]
    assert checkout_id.startswith("ws_CO_")
    # Before the decision both pending quirks show up.
    first, second = query(base, checkout_id), query(base, checkout_id)
    answers = {first.status_code, second.status_code}
    assert answers == {200, 500}
    pending_500 = first if first.status_code == 500 else second
    pending_200 = second if pending_500 is first else first
    assert pending_500.json()["errorMessage"] == "The transaction is being processed"
    assert pending_200.json()["ResultCode"] == "4999"
    assert wait_for(lambda: site.deliveries)
    _, path, body, _ = site.deliveries[0]
    assert path == "/webhooks/mpesa/stkpush/tok/"
    callback = body["Body"]["stkCallback"]
    assert callback["CheckoutRequestID"] == checkout_id and callback["ResultCode"] == 0
    items = callback["CallbackMetadata"]["Item"]
    assert {"Name": "Balance"} in items
    values = {i["Name"]: i.get("Value") for i in items}
    assert values["Amount"] == 100.0 and isinstance(values["PhoneNumber"], int)
    final = query(base, checkout_id).json()
    assert final["ResultCode"] == "0"  # a string in the query, a number in the callback


@pytest.mark.parametrize(("suffix", "code"), [("01", 1), ("02", 1032)])
def test_scripted_failures(simulator, site, suffix, code):
    base, _ = simulator
    checkout_id = push(base, site, phone=f"2547123456{suffix}").json()["CheckoutRequestID"]
    assert wait_for(lambda: site.deliveries)
    assert site.deliveries[0].body["Body"]["stkCallback"]["ResultCode"] == code
    assert "CallbackMetadata" not in site.deliveries[0].body["Body"]["stkCallback"]
    assert query(base, checkout_id).json()["ResultCode"] == str(code)


def test_no_answer_sends_no_callback_and_queries_1037_after_the_timeout(simulator, site):
    base, _ = simulator
    checkout_id = push(base, site, phone="254712345603").json()["CheckoutRequestID"]
    assert query(base, checkout_id).status_code in (200, 500)
    assert wait_for(lambda: query(base, checkout_id).json().get("ResultCode") == "1037", seconds=5)
    assert query(base, checkout_id).json()["ResultDesc"] == "DS timeout user cannot be reached."
    assert site.deliveries == []


def test_second_push_to_a_busy_phone_cannot_lock_the_subscriber(simulator, site):
    base, _ = simulator
    assert push(base, site, phone="254712345603").status_code == 200
    busy = push(base, site, phone="254712345603")
    assert busy.status_code == 500
    assert busy.json()["errorCode"] == "500.001.1001"
    assert "Unable to lock subscriber" in busy.json()["errorMessage"]


def test_duplicates_are_delivered_three_times(simulator, site):
    base, _ = simulator
    push(base, site, phone="254712345604")
    assert wait_for(lambda: len(site.deliveries) == 3)
    assert len({json.dumps(body) for body in site.bodies}) == 1


def test_unknown_checkout_id(simulator):
    base, _ = simulator
    response = query(base, "ws_CO_nope")
    assert response.status_code == 400
    assert response.json()["errorCode"] == "400.002.02"


def test_listed_on_the_index(simulator):
    _, server = simulator
    index = requests.get(server.base_url + "/", timeout=5).json()
    assert any(s["name"] == "mpesa" and "/daraja" in s["prefixes"] for s in index["simulators"])


def b2c(base, site, **overrides) -> requests.Response:
    url = f"http://127.0.0.1:{site.server_address[1]}/webhooks/mpesa/b2c"
    body = {
        "OriginatorConversationID": "RHCI-PO-1",
        "InitiatorName": CREDS["initiator_name"],
        "SecurityCredential": CREDS["security_credential"],
        "CommandID": "BusinessPayment",
        "Amount": 100,
        "PartyA": CREDS["b2c_shortcode"],
        "PartyB": "254708374149",
        "Remarks": "Treatment",
        "QueueTimeOutURL": f"{url}/timeout/tok/",
        "ResultURL": f"{url}/result/tok/",
        "Occassion": "Treatment",
    }
    body.update(overrides)
    return requests.post(
        f"{base}/mpesa/b2c/v3/paymentrequest",
        json=body,
        headers={"Authorization": f"Bearer {token(base)}"},
        timeout=5,
    )


def test_b2c_result_and_duplicate_originator(simulator, site):
    base, _ = simulator
    accepted = b2c(base, site)
    assert accepted.status_code == 200 and accepted.json()["ConversationID"].startswith("AG_")
    duplicate = b2c(base, site)
    assert duplicate.status_code == 500 and duplicate.json()["errorCode"] == "500.002.1001"
    assert wait_for(lambda: site.deliveries)
    _, path, body, _ = site.deliveries[0]
    assert path == "/webhooks/mpesa/b2c/result/tok/"
    assert body["Result"]["ResultCode"] == 0 and body["Result"]["OriginatorConversationID"] == "RHCI-PO-1"


def test_b2c_queue_timeout_then_result(simulator, site):
    base, _ = simulator
    b2c(base, site, PartyB="254708374103")
    assert wait_for(lambda: len(site.deliveries) == 2)
    assert [delivery.path for delivery in site.deliveries] == [
        "/webhooks/mpesa/b2c/timeout/tok/",
        "/webhooks/mpesa/b2c/result/tok/",
    ]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"SecurityCredential": "wrong"}, "Invalid Initiator"),
        ({"PartyA": "600000"}, "Invalid PartyA"),
        ({"Amount": "10.5"}, "Invalid Amount"),
        ({"Remarks": "x"}, "Invalid Remarks"),
    ],
)
def test_b2c_validation(simulator, site, overrides, message):
    base, _ = simulator
    response = b2c(base, site, **overrides)
    assert response.status_code == 400 and message in response.json()["errorMessage"]
