"""The provider sandbox (`manage.py sandbox`) over real HTTP: a sandbox and a tiny callback receiver run in threads.

No database: the sandbox keeps its own truth in memory. Time runs 20× faster (time_scale 0.05), so the
1 s / 10 s / 30 s script takes 0.05 s / 0.5 s / 1.5 s.
"""

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from django.conf import settings

from payments.providers.azampay.config import CONFIG as AZAMPAY_CONFIG
from payments.providers.azampay.provider import AzamPayProvider
from payments.providers.base import CallbackTrust, ChargeRequest, PaymentRef, PaymentStatus, RawCallback
from payments.sandbox import run_sandbox
from payments.sandbox.azampay import DEFAULT_CALLBACK_PASSWORD, TOKEN_REFUSED
from payments.tests.standin import StandInSite, standin_site

TIME_SCALE = 0.05
CREDS = AZAMPAY_CONFIG.sandbox_credentials()
AZAMPAY_CALLBACK_PATH = "/api/v1.0/donors/payment/azampay/callback/"
CALLBACK_PASSWORD = settings.PAYMENT_PROVIDERS["azampay"]["callback_password"] or DEFAULT_CALLBACK_PASSWORD


@pytest.fixture(scope="module")
def receiver() -> Iterator[StandInSite]:
    """Plays the site: records every callback in arrival order and answers like the real view."""
    with standin_site({"success": True, "message": "Callback received"}, AZAMPAY_CALLBACK_PATH) as site:
        yield site


@pytest.fixture(scope="module")
def sandbox(receiver: StandInSite) -> Iterator[Any]:
    server = run_sandbox("127.0.0.1", 0, receiver.url, TIME_SCALE)
    yield server
    server.shutdown()


@pytest.fixture(autouse=True)
def clean(request: pytest.FixtureRequest) -> None:
    if "sandbox" in request.fixturenames:
        sandbox = request.getfixturevalue("sandbox")
        assert requests.post(f"{sandbox.base_url}/_sandbox/reset", timeout=5).status_code == 200
        request.getfixturevalue("receiver").clear()


@pytest.fixture
def base(sandbox: Any) -> str:
    return sandbox.base_url


@pytest.fixture
def auth(base: str) -> dict[str, str]:
    answer = requests.post(
        f"{base}/azampay-auth/AppRegistration/GenerateToken",
        json={"appName": CREDS["app_name"], "clientId": CREDS["client_id"], "clientSecret": CREDS["client_secret"]},
        timeout=5,
    )
    return {"Authorization": f"Bearer {answer.json()['data']['accessToken']}"}


def mno_checkout(base: str, auth: dict[str, str], phone: str, *, amount: str = "12345", external_id: str = "") -> str:
    answer = requests.post(
        f"{base}/azampay/azampay/mno/checkout",
        json={
            "accountNumber": phone,
            "amount": amount,
            "currency": "TZS",
            "externalId": external_id or f"RHCI-DN-{phone[-4:]}-20250101120000",
            "provider": "Mpesa",
            "additionalProperties": {"reference": "x"},
        },
        headers=auth,
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["success"] is True
    assert body["message"] == "Your request has been received and is being processed."
    assert len(body["transactionId"]) == 32 and int(body["transactionId"], 16) >= 0
    return body["transactionId"]


def status_text(base: str, auth: dict[str, str], transaction_id: str) -> str:
    answer = requests.get(
        f"{base}/azampay/azampay/gettransactionstatus",
        params={"pgReferenceId": transaction_id, "bankName": "Mpesa"},
        headers=auth,
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def public_key_pem(base: str, path: str = "/azampay/azampay/v1/public-key") -> str:
    answer = requests.get(f"{base}{path}", params={"format": "Pem"}, timeout=5).json()
    assert answer["success"] is True and answer["format"] == "Pem"
    return answer["publicKey"]


def signature_valid(pem: str, body: dict[str, Any]) -> bool:
    key = serialization.load_pem_public_key(pem.encode())
    signed = "".join(body[k] for k in ("utilityref", "externalreference", "transactionstatus", "operator"))
    try:
        key.verify(base64.b64decode(body["signature"]), signed.encode(), padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        return False
    return True


# --- authenticator -------------------------------------------------------------------------------------------


def test_token_is_issued_for_the_sandbox_credentials(base: str) -> None:
    answer = requests.post(
        f"{base}/azampay-auth/AppRegistration/GenerateToken",
        json={"appName": CREDS["app_name"], "clientId": CREDS["client_id"], "clientSecret": CREDS["client_secret"]},
        timeout=5,
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["success"] is True and body["statusCode"] == 200
    assert body["message"] == "Token generated successfully"
    assert body["data"]["accessToken"]
    expire = datetime.fromisoformat(body["data"]["expire"].replace("Z", "+00:00"))
    assert body["data"]["expire"].endswith("Z")
    assert 3500 < (expire - datetime.now(UTC)).total_seconds() <= 3600


def test_wrong_credentials_get_423_and_missing_fields_get_problem_details(base: str) -> None:
    url = f"{base}/azampay-auth/AppRegistration/GenerateToken"
    wrong = requests.post(
        url, json={"appName": CREDS["app_name"], "clientId": CREDS["client_id"], "clientSecret": "nope"}, timeout=5
    )
    assert wrong.status_code == 423
    assert wrong.json() == TOKEN_REFUSED
    missing = requests.post(url, json={"appName": CREDS["app_name"]}, timeout=5)
    assert missing.status_code == 400
    assert set(missing.json()["errors"]) == {"ClientId", "ClientSecret"}


def test_expired_token_is_refused(receiver: StandInSite) -> None:
    short = run_sandbox("127.0.0.1", 0, receiver.url, TIME_SCALE, token_lifetime=1)
    try:
        answer = requests.post(
            f"{short.base_url}/azampay-auth/AppRegistration/GenerateToken",
            json={"appName": CREDS["app_name"], "clientId": CREDS["client_id"], "clientSecret": CREDS["client_secret"]},
            timeout=5,
        )
        headers = {"Authorization": f"Bearer {answer.json()['data']['accessToken']}"}
        time.sleep(1.1)
        late = requests.get(f"{short.base_url}/azampay/api/v1/Partner/GetPaymentPartners", headers=headers, timeout=5)
        assert late.status_code == 401
    finally:
        short.shutdown()


# --- checkout validation ----------------------------------------------------------------------------------------


def test_mno_checkout_without_bearer_token_is_401(base: str) -> None:
    body = {
        "accountNumber": "255712345678",
        "amount": "1000",
        "currency": "TZS",
        "externalId": "X",
        "provider": "Mpesa",
    }
    assert requests.post(f"{base}/azampay/azampay/mno/checkout", json=body, timeout=5).status_code == 401
    forged = {"Authorization": "Bearer U2FsdGVkX1forged"}
    answer = requests.post(f"{base}/azampay/azampay/mno/checkout", json=body, headers=forged, timeout=5)
    assert answer.status_code == 401
    assert answer.json() == {"message": "Please Provide Valid Authorization", "status": "Error"}


def test_mno_checkout_rejects_invalid_fields_with_problem_details(base: str, auth: dict[str, str]) -> None:
    answer = requests.post(
        f"{base}/azampay/azampay/mno/checkout",
        json={"accountNumber": "0712345678", "amount": "1000.00", "currency": "KES", "provider": "MPESA"},
        headers=auth,
        timeout=5,
    )
    assert answer.status_code == 400
    body = answer.json()
    assert body["status"] == 400
    assert set(body["errors"]) == {"accountNumber", "amount", "currency", "externalId", "provider"}


def test_bad_json_gets_a_400_json_answer_and_the_server_keeps_serving(base: str, auth: dict[str, str]) -> None:
    for path, headers in (
        ("/azampay/azampay/mno/checkout", auth),
        ("/azampay-auth/AppRegistration/GenerateToken", {}),
        ("/telegram/bot1:x/sendMessage", {}),
    ):
        answer = requests.post(
            f"{base}{path}", data=b"{not json", headers={**headers, "Content-Type": "application/json"}, timeout=5
        )
        assert answer.status_code == 400, path
        assert isinstance(answer.json(), dict)
    unknown = requests.get(f"{base}/no/such/path", timeout=5)
    assert unknown.status_code == 404 and unknown.json()["error"] == "Not Found"
    assert requests.get(f"{base}/", timeout=5).status_code == 200


def test_status_of_an_unknown_transaction_is_404(base: str, auth: dict[str, str]) -> None:
    answer = requests.get(
        f"{base}/azampay/azampay/gettransactionstatus",
        params={"pgReferenceId": "0" * 32, "bankName": "Mpesa"},
        headers=auth,
        timeout=5,
    )
    assert answer.status_code == 404
    assert answer.json() == {"success": False, "message": "Transaction not found"}


# --- scripted outcomes ------------------------------------------------------------------------------------------


def test_success_delivers_one_signed_callback_with_password_and_exact_amount(
    base: str, auth: dict[str, str], receiver: StandInSite
) -> None:
    mno_checkout(base, auth, "255712345678")  # "pending before the decision" is timed in the no-answer test
    transaction_id = requests.get(f"{base}/_sandbox/transactions", timeout=5).json()[0]["transactionId"]
    [callback] = receiver.wait_for_bodies(1)
    assert callback["transactionstatus"] == "success"
    assert callback["message"] == "success"
    assert callback["utilityref"] == "RHCI-DN-5678-20250101120000"
    assert callback["reference"] == callback["transid"] == callback["externalreference"] == transaction_id
    assert callback["amount"] == "12345"
    assert callback["msisdn"] == "255712345678"
    assert callback["operator"] == "Mpesa"
    assert callback["mnoreference"]
    assert callback["password"] == CALLBACK_PASSWORD
    assert signature_valid(public_key_pem(base), callback)
    assert public_key_pem(base, "/azampay-auth/api/Token/PublicKey") == public_key_pem(base)
    assert status_text(base, auth, transaction_id) == "Transaction successful."

    time.sleep(0.2)  # four more decision periods: still exactly one delivery
    assert len(receiver.wait_for_bodies(1)) == 1
    [charge] = requests.get(f"{base}/_sandbox/transactions", timeout=5).json()
    assert charge["outcome"] == "success" and charge["status"] == "success"
    assert charge["amount"] == "12345" and charge["channel"] == "Mpesa"
    assert [(d["label"], d["http_status"]) for d in charge["deliveries"]] == [("success", 200)]


def test_the_projects_adapter_round_trips_against_the_sandbox(base: str, receiver: StandInSite) -> None:
    provider = AzamPayProvider(
        app_name=CREDS["app_name"],
        client_id=CREDS["client_id"],
        client_secret=CREDS["client_secret"],
        auth_url=f"{base}/azampay-auth",
        api_url=f"{base}/azampay",
        callback_password=CALLBACK_PASSWORD,
        public_key_pem=public_key_pem(base),
        require_signature=True,
    )
    started = provider.start_charge(
        ChargeRequest(
            reference="RHCI-DN-9-20250101120000",
            amount=Decimal("5000"),
            currency="TZS",
            msisdn="255712345699",
            channel="Mpesa",
        )
    )
    assert started.status == PaymentStatus.PENDING and started.provider_reference
    [callback] = receiver.wait_for_bodies(1)
    raw = json.dumps(callback).encode()
    assert provider.authenticate_callback(RawCallback(kind="payment", body=raw)) == CallbackTrust.TRUSTED
    parsed = provider.parse_callback("payment", raw, {})
    assert parsed.status == PaymentStatus.SUCCEEDED
    assert parsed.our_reference == "RHCI-DN-9-20250101120000" and parsed.amount == Decimal("5000")
    checked = provider.fetch_status(
        PaymentRef(reference=parsed.our_reference, provider_reference=started.provider_reference, channel="Mpesa")
    )
    assert checked.status == PaymentStatus.SUCCEEDED and checked.amount == Decimal("5000")


@pytest.mark.parametrize(
    ("phone", "message", "status"),
    [
        ("255712345601", "Insufficient funds", "Transaction failed: insufficient funds."),
        ("255712345602", "Cancelled by payer", "Transaction cancelled by payer."),
    ],
)
def test_failure_rows_deliver_a_failure_callback(
    base: str, auth: dict[str, str], receiver: StandInSite, phone: str, message: str, status: str
) -> None:
    transaction_id = mno_checkout(base, auth, phone)
    [callback] = receiver.wait_for_bodies(1)
    assert callback["transactionstatus"] == "failure"
    assert callback["message"] == message
    assert status_text(base, auth, transaction_id) == status


def test_no_answer_sends_no_callback_and_times_out(base: str, auth: dict[str, str], receiver: StandInSite) -> None:
    transaction_id = mno_checkout(base, auth, "255712345603")
    time.sleep(0.3)
    assert status_text(base, auth, transaction_id) == "Transaction pending."
    deadline = time.monotonic() + 3
    while status_text(base, auth, transaction_id) == "Transaction pending." and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status_text(base, auth, transaction_id) == "Transaction failed: timeout (no answer from payer)."
    assert receiver.wait_for_bodies(1, timeout=0.1) == []


def test_duplicate_row_delivers_the_same_callback_three_times_together(
    base: str, auth: dict[str, str], receiver: StandInSite
) -> None:
    mno_checkout(base, auth, "255712345604")
    callbacks = receiver.wait_for_bodies(3)
    assert len(callbacks) == 3
    assert callbacks[0] == callbacks[1] == callbacks[2]
    assert callbacks[0]["transactionstatus"] == "success"
    arrivals = [delivery.at for delivery in receiver.deliveries]
    assert max(arrivals) - min(arrivals) < 0.5
    time.sleep(0.1)
    assert len(receiver.wait_for_bodies(3)) == 3


def test_lost_callback_row_never_calls_back_but_status_says_successful(
    base: str, auth: dict[str, str], receiver: StandInSite
) -> None:
    transaction_id = mno_checkout(base, auth, "255712345605")
    assert receiver.wait_for_bodies(1, timeout=0.4) == []
    assert status_text(base, auth, transaction_id) == "Transaction successful."
    assert requests.get(f"{base}/_sandbox/transactions", timeout=5).json()[0]["deliveries"] == []


def test_late_row_calls_back_after_about_ten_seconds(base: str, auth: dict[str, str], receiver: StandInSite) -> None:
    started = time.monotonic()
    transaction_id = mno_checkout(base, auth, "255712345606")
    [callback] = receiver.wait_for_bodies(1, timeout=3)
    assert receiver.deliveries[0].at - started >= 10 * TIME_SCALE * 0.9
    assert callback["transactionstatus"] == "success"
    assert status_text(base, auth, transaction_id) == "Transaction successful."


def test_out_of_order_row_sends_failure_then_success(base: str, auth: dict[str, str], receiver: StandInSite) -> None:
    transaction_id = mno_checkout(base, auth, "255712345607")
    callbacks = receiver.wait_for_bodies(2)
    assert [c["transactionstatus"] for c in callbacks] == ["failure", "success"]
    assert status_text(base, auth, transaction_id) == "Transaction successful."


def test_reset_drops_callbacks_still_scheduled(base: str, auth: dict[str, str], receiver: StandInSite) -> None:
    mno_checkout(base, auth, "255712345606")  # its callback is due in 0.5 s
    requests.post(f"{base}/_sandbox/reset", timeout=5)
    assert receiver.wait_for_bodies(1, timeout=0.8) == []
    assert requests.get(f"{base}/_sandbox/transactions", timeout=5).json() == []


# --- bank and hosted checkouts ------------------------------------------------------------------------------------


def test_bank_checkout_answers_with_reference_id(base: str, auth: dict[str, str], receiver: StandInSite) -> None:
    answer = requests.post(
        f"{base}/azampay/azampay/bank/checkout",
        json={
            "amount": "2000",
            "currencyCode": "TZS",
            "merchantAccountNumber": "0150000000",
            "merchantMobileNumber": "255712345678",
            "merchantName": "A Donor",
            "otp": "1234",
            "provider": "CRDB",
            "referenceId": "RHCI-DN-5-20250101120000",
            "additionalProperties": {},
        },
        headers=auth,
        timeout=5,
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["success"] is True and body["msg"] == ""
    assert len(body["data"]["properties"]["ReferenceID"]) == 32
    [callback] = receiver.wait_for_bodies(1)
    assert callback["operator"] == "CRDB" and callback["utilityref"] == "RHCI-DN-5-20250101120000"


def test_hosted_checkout_page_fail_button_redirects_and_calls_back(
    base: str, auth: dict[str, str], receiver: StandInSite
) -> None:
    answer = requests.post(
        f"{base}/azampay/api/v1/Partner/PostCheckout",
        json={
            "appName": CREDS["app_name"],
            "clientId": CREDS["client_id"],
            "vendorId": CREDS["vendor_id"],
            "vendorName": "Demo",
            "amount": "700",
            "currency": "TZS",
            "language": "en",
            "externalId": "RHCI-DN-7-20250101120000",
            "requestOrigin": "http://site.test",
            "redirectSuccessURL": "http://site.test/ok",
            "redirectFailURL": "http://site.test/fail",
            "cart": {"items": [{"name": "Donation"}]},
        },
        headers={**auth, "Content-Type": "application/json-patch+json"},
        timeout=5,
    )
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain")
    page_url = answer.text
    assert page_url.startswith(f"{base}/azampay/checkout/")
    page = requests.get(page_url, timeout=5)
    assert page.status_code == 200 and ">Pay<" in page.text and ">Fail<" in page.text
    transaction_id = page_url.rsplit("/", 1)[1]
    assert status_text(base, auth, transaction_id) == "Transaction pending."
    pressed = requests.post(page_url, data={"decision": "fail"}, allow_redirects=False, timeout=5)
    assert pressed.status_code == 303 and pressed.headers["Location"] == "http://site.test/fail"
    [callback] = receiver.wait_for_bodies(1)
    assert callback["transactionstatus"] == "failure" and callback["amount"] == "700"
    assert status_text(base, auth, transaction_id) == "Transaction failed: card declined."
    again = requests.post(page_url, data={"decision": "pay"}, allow_redirects=False, timeout=5)
    assert again.headers["Location"] == "http://site.test/fail"  # the first press decided


# --- telegram ---------------------------------------------------------------------------------------------------


def test_telegram_messages_are_recorded_and_listed(base: str) -> None:
    me = requests.get(f"{base}/telegram/bot123:secret/getMe", timeout=5).json()
    assert me == {"ok": True, "result": {"id": 1, "is_bot": True, "username": "sandbox_bot", "first_name": "Sandbox"}}
    sent = requests.post(
        f"{base}/telegram/bot123:secret/sendMessage",
        json={"chat_id": "-100", "text": "<b>stuck</b>", "parse_mode": "HTML"},
        timeout=5,
    ).json()
    assert sent["ok"] is True and sent["result"]["chat"]["id"] == -100 and sent["result"]["text"] == "<b>stuck</b>"
    form = requests.post(f"{base}/telegram/bot123:secret/sendMessage", data={"chat_id": "42", "text": "hi"}, timeout=5)
    assert form.json()["result"]["message_id"] == sent["result"]["message_id"] + 1
    empty = requests.post(f"{base}/telegram/bot123:secret/sendMessage", json={"chat_id": 42}, timeout=5)
    assert empty.status_code == 400
    assert empty.json() == {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}
    messages = requests.get(f"{base}/_sandbox/telegram/messages", timeout=5).json()
    assert [(m["chat_id"], m["text"], m["parse_mode"]) for m in messages] == [
        (-100, "<b>stuck</b>", "HTML"),
        (42, "hi", ""),
    ]
    assert all(m["bot_id"] == "123" for m in messages)  # never the token's secret half
