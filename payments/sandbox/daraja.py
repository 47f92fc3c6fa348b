"""Simulated Safaricom Daraja under /daraja: OAuth, STK push (M-Pesa Express), its callbacks, STK Push Query.

Shapes follow docs/providers/mpesa.md: Basic-auth token with
`expires_in` as a string, the `{requestId, errorCode, errorMessage}` error envelope, Password recomputed from
the passkey and Timestamp, whole-number Amount, 2547/2541 phones, AccountReference ≤ 12 and TransactionDesc
≤ 13, callbacks POSTed to the CallBackURL of each request (with the `Balance` item that has no `Value`), and
both pending answers of the query: HTTP 500 "The transaction is being processed" and HTTP 200 ResultCode
4999. Outcomes come from the phone number's last two digits (outcomes.py, docs/api.md).

B2C payouts (`/mpesa/b2c/v3/paymentrequest`) answer with the `{"Result": {...}}` envelope at the ResultURL; by
the receiving number's last two digits: 01 → ResultCode 1 (insufficient balance), 03 → a queue-timeout callback
first and the success result later, 04 → the result three times, 05 → no callback; anything else succeeds.
"""

import base64
import hashlib
import hmac
import json
import logging
import random
import re
import secrets
import time
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from payments.providers.mpesa.config import CONFIG as MPESA_CONFIG
from payments.sandbox.base import (
    Endpoint,
    Route,
    SandboxContext,
    Simulator,
    dispatch_table,
    endpoint,
    mask_msisdn,
)
from payments.sandbox.outcomes import DECISION_SECONDS, PENDING, Outcome, Result, outcome_for_phone
from payments.sandbox.protocol import BadRequestBody, SandboxRequest, SandboxResponse, json_response
from payments.sandbox.store import Charge, IssuedToken, utc_now

logger = logging.getLogger("payments.sandbox.daraja")

PROVIDER = "mpesa"
PREFIX = "/daraja"
NAIROBI = ZoneInfo("Africa/Nairobi")
MSISDN_RE = re.compile(r"254[17]\d{8}")
TIMESTAMP_RE = re.compile(r"\d{14}")
SHORTCODE_RE = re.compile(r"\d{5,7}")
TRANSACTION_TYPES = ("CustomerPayBillOnline", "CustomerBuyGoodsOnline")
MAX_AMOUNT = 250_000
# Daraja refuses C2B URLs containing these words, in any case (docs/providers/mpesa.md). Kept here, not
# imported from the site's adapter: the simulator plays Safaricom and shares no code with its client.
C2B_FORBIDDEN_URL_WORDS = ("mpesa", "m-pesa", "safaricom", "exe", "exec", "cmd", "sql", "query")

# (ResultCode, callback ResultDesc, query ResultDesc): wording differs between the two (docs/providers/mpesa.md).
RESULT_CODES: dict[Result, tuple[int, str, str]] = {
    Result.SUCCESS: (
        0,
        "The service request is processed successfully.",
        "The service request is processed successfully.",
    ),
    Result.INSUFFICIENT_FUNDS: (
        1,
        "The balance is insufficient for the transaction.",
        "The balance is insufficient for the transaction.",
    ),
    Result.CANCELLED: (1032, "Request cancelled by user", "Request cancelled by user"),
    Result.TIMEOUT: (1037, "DS timeout user cannot be reached", "DS timeout user cannot be reached."),
    Result.DECLINED: (2001, "The initiator information is invalid.", "The initiator information is invalid."),
    Result.FAILED: (2001, "The initiator information is invalid.", "The initiator information is invalid."),
}
PENDING_500 = "The transaction is being processed"
PENDING_4999 = "The transaction is still under processing"


class DarajaError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_envelope(status: int, code: str, message: str) -> SandboxResponse:
    return json_response(
        status,
        {"requestId": f"{secrets.token_hex(4)}-{secrets.token_hex(12)}", "errorCode": code, "errorMessage": message},
    )


def build_stk_callback(
    *,
    merchant_request_id: str,
    checkout_request_id: str,
    result_code: int,
    result_desc: str,
    amount: int | None = None,
    receipt: str = "",
    phone: str = "",
    transaction_date: str = "",
) -> dict[str, Any]:
    """The STK callback body (docs/providers/mpesa.md): metadata only on success, `Balance` without `Value`."""
    callback: dict[str, Any] = {
        "MerchantRequestID": merchant_request_id,
        "CheckoutRequestID": checkout_request_id,
        "ResultCode": result_code,
        "ResultDesc": result_desc,
    }
    if result_code == 0:
        callback["CallbackMetadata"] = {
            "Item": [
                {"Name": "Amount", "Value": float(amount or 0)},
                {"Name": "MpesaReceiptNumber", "Value": receipt},
                {"Name": "Balance"},
                {"Name": "TransactionDate", "Value": int(transaction_date)},
                {"Name": "PhoneNumber", "Value": int(phone)},
            ]
        }
    return {"Body": {"stkCallback": callback}}


def new_receipt() -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(random.choice(alphabet) for _ in range(10))


class DarajaSimulator(Simulator):
    name = PROVIDER

    def __init__(self, context: SandboxContext, *, credentials: dict[str, str] | None = None) -> None:
        super().__init__(context)
        creds = credentials or MPESA_CONFIG.sandbox_credentials()
        self.consumer_key = creds["consumer_key"]
        self.consumer_secret = creds["consumer_secret"]
        self.shortcode = str(creds["shortcode"])
        self.passkey = creds["passkey"]
        self.endpoints: list[Endpoint] = [
            endpoint("GET", r"/oauth/v1/generate", self.generate_token),
            endpoint("POST", r"/mpesa/stkpush/v1/processrequest", self.stk_push),
            endpoint("POST", r"/mpesa/stkpushquery/v1/query", self.stk_query),
            endpoint("POST", r"/mpesa/c2b/v(?:1|2)/registerurl", self.c2b_register),
            endpoint("POST", r"/mpesa/c2b/v(?:1|2)/simulate", self.c2b_simulate),
            endpoint("POST", r"/mpesa/b2c/v(?:1|3)/paymentrequest", self.b2c_payment),
            endpoint("POST", r"/mpesa/reversal/v1/request", self.reversal),
        ]
        self.b2c_shortcode = str(creds.get("b2c_shortcode", "600992"))
        self.initiator_name = creds.get("initiator_name", "testapi")
        self.security_credential = creds.get("security_credential", "")
        self.c2b_shortcode = str(creds.get("c2b_shortcode", "600984"))
        self.c2b_urls: dict[str, dict[str, str]] = {}  # shortcode → registered URLs and ResponseType

    def routes(self) -> dict[str, Route]:
        return {PREFIX: self.handle}

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "shortcode": self.shortcode,
            "consumer_key": self.consumer_key,
            "outcomes": "by the payer number's last two digits, see docs/api.md",
        }

    def handle(self, request: SandboxRequest, subpath: str) -> SandboxResponse:
        try:
            return dispatch_table(
                request,
                subpath,
                self.endpoints,
                not_found=lambda: error_envelope(404, "404.001.01", "Resource not found"),
                method_not_allowed=lambda: error_envelope(405, "405.001", "Method Not Allowed"),
            )
        except DarajaError as exc:
            return error_envelope(exc.status, exc.code, exc.message)

    # --- oauth -------------------------------------------------------------------------------------------

    def generate_token(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        if request.query.get("grant_type") != "client_credentials":
            raise DarajaError(400, "400.008.02", "Invalid grant type passed")
        scheme, _, encoded = request.header("authorization").partition(" ")
        if scheme.lower() != "basic":
            raise DarajaError(400, "400.008.01", "Invalid Authentication passed")
        try:
            key, _, secret = base64.b64decode(encoded.strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            key, secret = "", ""
        matches = [
            hmac.compare_digest(key.encode(), self.consumer_key.encode()),
            hmac.compare_digest(secret.encode(), self.consumer_secret.encode()),
        ]
        if not all(matches):
            logger.info("Daraja sandbox refused a token request (wrong consumer key or secret)")
            raise DarajaError(400, "400.008.01", "Invalid Authentication passed")
        token = secrets.token_urlsafe(21)
        lifetime = self.context.token_lifetime
        self.store.add_token(
            token,
            IssuedToken(
                provider=PROVIDER,
                expires_mono=time.monotonic() + lifetime,
                expires_at=utc_now() + timedelta(seconds=lifetime),
            ),
        )
        return json_response(200, {"access_token": token, "expires_in": str(min(lifetime, 3599))})

    def _authorize(self, request: SandboxRequest) -> None:
        scheme, _, token = request.header("authorization").partition(" ")
        if scheme.lower() != "bearer" or not self.store.token_valid(PROVIDER, token.strip()):
            raise DarajaError(404, "404.001.03", "Invalid Access Token")

    def _check_password(self, data: dict[str, Any]) -> None:
        timestamp = str(data.get("Timestamp") or "")
        if not TIMESTAMP_RE.fullmatch(timestamp):
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid Timestamp")
        shortcode = str(data.get("BusinessShortCode") or "")
        if not SHORTCODE_RE.fullmatch(shortcode):
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid BusinessShortCode")
        expected = base64.b64encode(f"{self.shortcode}{self.passkey}{timestamp}".encode()).decode()
        given = str(data.get("Password") or "")
        if shortcode != self.shortcode or not hmac.compare_digest(given.encode(), expected.encode()):
            raise DarajaError(500, "500.001.1001", "Wrong credentials")

    # --- STK push ----------------------------------------------------------------------------------------

    def stk_push(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        self._authorize(request)
        data = _json_object(request)
        self._check_password(data)
        if data.get("TransactionType") not in TRANSACTION_TYPES:
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid TransactionType")
        amount = _whole_amount(data.get("Amount"))
        phone = _phone(data, "PartyA")
        if _phone(data, "PhoneNumber") != phone:
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid PhoneNumber")
        if not SHORTCODE_RE.fullmatch(str(data.get("PartyB") or "")):
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid PartyB")
        callback_url = data.get("CallBackURL")
        if (
            not isinstance(callback_url, str)
            or callback_url != callback_url.strip()
            or urlsplit(callback_url).scheme not in ("http", "https")
            or not urlsplit(callback_url).netloc
        ):
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid CallBackURL")
        reference = data.get("AccountReference")
        if not isinstance(reference, str) or not reference.strip() or len(reference) > 12:
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid AccountReference")
        desc = data.get("TransactionDesc", "")
        if desc is None or not isinstance(desc, str) or len(desc) > 13:
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid Remarks")
        with self.store.lock:
            busy = [c for c in self.store.find_charges(provider=PROVIDER) if c.msisdn == phone and c.state() == PENDING]
            if busy:
                raise DarajaError(
                    500,
                    "500.001.1001",
                    "Unable to lock subscriber, a transaction is already in process for the current subscriber",
                )
            charge = self._new_charge(
                reference=reference,
                phone=phone,
                amount=amount,
                callback_url=callback_url,
                outcome=outcome_for_phone(phone),
            )
        return json_response(
            200,
            {
                "MerchantRequestID": charge.extra["merchant_request_id"],
                "CheckoutRequestID": charge.transaction_id,
                "ResponseCode": "0",
                "ResponseDescription": "Success. Request accepted for processing",
                "CustomerMessage": "Success. Request accepted for processing",
            },
        )

    def _new_charge(self, *, reference: str, phone: str, amount: int, callback_url: str, outcome: Outcome) -> Charge:
        now = datetime.now(NAIROBI)
        checkout_id = f"ws_CO_{now:%d%m%Y%H%M%S}{secrets.randbelow(10**9):09d}"
        charge = Charge(
            provider=PROVIDER,
            transaction_id=checkout_id,
            external_id=reference,
            msisdn=phone,
            amount=str(amount),
            currency="KES",
            channel="stkpush",
            outcome=outcome,
            extra={
                "merchant_request_id": f"{secrets.token_hex(2)}-{secrets.token_hex(2)}-{secrets.token_hex(12)}",
                "callback_url": callback_url,
                "receipt": new_receipt(),
                "queries": 0,
            },
        )
        charge.decide_at = charge.created_mono + self.dispatcher.scaled(outcome.decide_after)
        self.store.add_charge(charge)
        for scripted in outcome.callbacks:
            self.dispatcher.call_later(scripted.after, partial(self._deliver, charge, scripted.result, scripted.copies))
        logger.info(
            "Daraja sandbox STK push %s for %s (%s): outcome %s",
            checkout_id,
            mask_msisdn(phone),
            reference,
            outcome.name,
        )
        return charge

    def callback_body(self, charge: Charge, result: Result) -> dict[str, Any]:
        code, desc, _ = RESULT_CODES[result]
        return build_stk_callback(
            merchant_request_id=charge.extra["merchant_request_id"],
            checkout_request_id=charge.transaction_id,
            result_code=code,
            result_desc=desc,
            amount=int(charge.amount),
            receipt=charge.extra["receipt"],
            phone=charge.msisdn,
            transaction_date=datetime.now(NAIROBI).strftime("%Y%m%d%H%M%S"),
        )

    def _deliver(self, charge: Charge, result: Result, copies: int) -> None:
        body = json.dumps(self.callback_body(charge, result)).encode()
        url = charge.extra["callback_url"]
        if copies > 1:
            self.dispatcher.post_burst(charge, url, body, label=result.value, copies=copies)
        else:
            self.dispatcher.post(charge, url, body, label=result.value)

    # --- STK push query ------------------------------------------------------------------------------------

    def stk_query(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        self._authorize(request)
        data = _json_object(request)
        self._check_password(data)
        checkout_id = str(data.get("CheckoutRequestID") or "")
        charge = self.store.get_charge(PROVIDER, checkout_id)
        if charge is None:
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid CheckoutRequestID")
        with self.store.lock:
            charge.extra["queries"] += 1
            queries = charge.extra["queries"]
        state = charge.state()
        if state == PENDING:
            # Both real pending answers (docs/providers/mpesa.md), alternating so every client meets both.
            if queries % 2:
                return json_response(
                    500, {"requestId": checkout_id, "errorCode": "500.001.1001", "errorMessage": PENDING_500}
                )
            return json_response(
                200,
                {
                    "ResponseCode": "0",
                    "ResponseDescription": "The service request has been accepted successsfully",
                    "MerchantRequestID": charge.extra["merchant_request_id"],
                    "CheckoutRequestID": checkout_id,
                    "ResultCode": "4999",
                    "ResultDesc": PENDING_4999,
                },
            )
        code, _, desc = RESULT_CODES[Result(state)]
        return json_response(
            200,
            {
                "ResponseCode": "0",
                "ResponseDescription": "The service request has been accepted successsfully",
                "MerchantRequestID": charge.extra["merchant_request_id"],
                "CheckoutRequestID": checkout_id,
                "ResultCode": str(code),
                "ResultDesc": desc,
            },
        )

    # --- C2B paybill -----------------------------------------------------------------------------------------

    def c2b_register(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        self._authorize(request)
        data = _json_object(request)
        shortcode = str(data.get("ShortCode") or "")
        if shortcode != self.c2b_shortcode:
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid ShortCode")
        if data.get("ResponseType") not in ("Completed", "Cancelled"):
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid ResponseType")
        urls = {}
        for key in ("ConfirmationURL", "ValidationURL"):
            value = data.get(key)
            if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
                raise DarajaError(400, "400.002.02", f"Bad Request - Invalid {key}")
            if any(word in value.lower() for word in C2B_FORBIDDEN_URL_WORDS):
                raise DarajaError(400, "400.002.02", f"Bad Request - Invalid {key}")
            urls[key] = value
        with self.store.lock:
            self.c2b_urls[shortcode] = {**urls, "ResponseType": data["ResponseType"]}
        return json_response(
            200,
            {"OriginatorCoversationID": _conversation_id(), "ResponseCode": "0", "ResponseDescription": "Success"},
        )

    def c2b_simulate(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        self._authorize(request)
        data = _json_object(request)
        shortcode = str(data.get("ShortCode") or "")
        registered = self.c2b_urls.get(shortcode)
        if registered is None:
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid ShortCode (no URLs registered)")
        if data.get("CommandID") not in ("CustomerPayBillOnline", "CustomerBuyGoodsOnline"):
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid CommandID")
        amount = _whole_amount(data.get("Amount"))
        msisdn = str(data.get("Msisdn") or "")
        if not MSISDN_RE.fullmatch(msisdn):
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid Msisdn")
        bill_ref = str(data.get("BillRefNumber") or "")[:20]
        trans_id = "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(10))
        charge = Charge(
            provider=PROVIDER,
            transaction_id=trans_id,
            external_id=bill_ref,
            msisdn=msisdn,
            amount=str(amount),
            currency="KES",
            channel="c2b",
            outcome=None,
            extra={"kind": "c2b", "shortcode": shortcode, **registered},
        )
        self.store.add_charge(charge)
        body = {
            "TransactionType": "Pay Bill" if data["CommandID"] == "CustomerPayBillOnline" else "Buy Goods",
            "TransID": trans_id,
            "TransTime": datetime.now(NAIROBI).strftime("%Y%m%d%H%M%S"),
            "TransAmount": f"{amount}.00",
            "BusinessShortCode": shortcode,
            "BillRefNumber": bill_ref,
            "InvoiceNumber": "",
            "OrgAccountBalance": "",
            "ThirdPartyTransID": "",
            # Since July 2024 Daraja sends a 64-character hex hash of the payer's number (docs/providers/mpesa.md).
            "MSISDN": hashlib.sha256(msisdn.encode()).hexdigest(),
            "FirstName": "JOHN",
            "MiddleName": "",
            "LastName": "DOE",
        }
        self.dispatcher.call_later(DECISION_SECONDS, partial(self._c2b_deliver, charge, body))
        return json_response(
            200,
            {
                "OriginatorCoversationID": _conversation_id(),
                "ResponseCode": "0",
                "ResponseDescription": "Accept the service request successfully.",
            },
        )

    def _c2b_deliver(self, charge: Charge, body: dict[str, Any]) -> None:
        """Validation first; confirmation when it accepts (or is unreachable and ResponseType is Completed)."""
        validation = self.dispatcher.post(
            charge, charge.extra["ValidationURL"], json.dumps(body).encode(), label="c2b_validation"
        )
        try:
            accepted = str(json.loads(validation.response).get("ResultCode")) == "0"
        except (ValueError, AttributeError):
            accepted = None
        if accepted is None:
            accepted = validation.http_status is None and charge.extra["ResponseType"] == "Completed"
        with self.store.lock:
            charge.extra["validation_accepted"] = accepted
        if not accepted:
            return
        confirmation = {**body, "OrgAccountBalance": "49197.00"}
        self.dispatcher.post(
            charge, charge.extra["ConfirmationURL"], json.dumps(confirmation).encode(), label="c2b_confirmation"
        )

    # --- B2C payouts -----------------------------------------------------------------------------------------

    def b2c_payment(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        self._authorize(request)
        data = _json_object(request)
        originator = data.get("OriginatorConversationID")
        if not isinstance(originator, str) or not originator.strip():
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid OriginatorConversationID")
        if data.get("InitiatorName") != self.initiator_name or not hmac.compare_digest(
            str(data.get("SecurityCredential") or "").encode(), self.security_credential.encode()
        ):
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid Initiator")
        if data.get("CommandID") not in ("BusinessPayment", "SalaryPayment", "PromotionPayment"):
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid CommandID")
        amount = _whole_amount(data.get("Amount"))
        if str(data.get("PartyA") or "") != self.b2c_shortcode:
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid PartyA")
        phone = _phone(data, "PartyB")
        remarks = data.get("Remarks")
        if not isinstance(remarks, str) or not 2 <= len(remarks) <= 100:
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid Remarks")
        urls = {}
        for key in ("ResultURL", "QueueTimeOutURL"):
            value = data.get(key)
            if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
                raise DarajaError(400, "400.002.02", f"Bad Request - Invalid {key}")
            urls[key] = value
        with self.store.lock:
            if any(
                c.extra.get("kind") == "b2c" and c.external_id == originator
                for c in self.store.find_charges(provider=PROVIDER)
            ):
                raise DarajaError(500, "500.002.1001", "Duplicate OriginatorConversationID.")
            conversation_id = f"AG_{datetime.now(NAIROBI):%Y%m%d}_{secrets.token_hex(10)}"
            charge = Charge(
                provider=PROVIDER,
                transaction_id=conversation_id,
                external_id=originator,
                msisdn=phone,
                amount=str(amount),
                currency="KES",
                channel="b2c",
                outcome=None,
                extra={"kind": "b2c", "receipt": new_receipt(), **urls},
            )
            self.store.add_charge(charge)
        suffix = phone[-2:]
        if suffix == "03":
            self.dispatcher.call_later(DECISION_SECONDS, partial(self._b2c_deliver, charge, "timeout", 1))
            self.dispatcher.call_later(3 * DECISION_SECONDS, partial(self._b2c_deliver, charge, "success", 1))
        elif suffix != "05":
            label = "insufficient_funds" if suffix == "01" else "success"
            copies = 3 if suffix == "04" else 1
            self.dispatcher.call_later(DECISION_SECONDS, partial(self._b2c_deliver, charge, label, copies))
        return json_response(
            200,
            {
                "ConversationID": conversation_id,
                "OriginatorConversationID": originator,
                "ResponseCode": "0",
                "ResponseDescription": "Accept the service request successfully.",
            },
        )

    def b2c_result_body(self, charge: Charge, label: str) -> dict[str, Any]:
        result: dict[str, Any] = {
            "ResultType": 0,
            "OriginatorConversationID": charge.external_id,
            "ConversationID": charge.transaction_id,
            "TransactionID": charge.extra["receipt"],
            "ReferenceData": {"ReferenceItem": {"Key": "QueueTimeoutURL"}},
        }
        if label == "success":
            result.update({"ResultCode": 0, "ResultDesc": "The service request is processed successfully."})
            result["ResultParameters"] = {
                "ResultParameter": [
                    {"Key": "TransactionAmount", "Value": int(charge.amount)},
                    {"Key": "TransactionReceipt", "Value": charge.extra["receipt"]},
                    {"Key": "ReceiverPartyPublicName", "Value": f"{charge.msisdn} - TREATMENT PARTNER"},
                    {"Key": "B2CRecipientIsRegisteredCustomer", "Value": "Y"},
                ]
            }
        elif label == "timeout":
            result.update({"ResultCode": 1, "ResultDesc": "The service request has timed out."})
        else:
            result.update({"ResultCode": 1, "ResultDesc": "The balance is insufficient for the transaction."})
        return {"Result": result}

    def _b2c_deliver(self, charge: Charge, label: str, copies: int) -> None:
        body = json.dumps(self.b2c_result_body(charge, label)).encode()
        url = charge.extra["QueueTimeOutURL" if label == "timeout" else "ResultURL"]
        if copies > 1:
            self.dispatcher.post_burst(charge, url, body, label=f"b2c_{label}", copies=copies)
        else:
            self.dispatcher.post(charge, url, body, label=f"b2c_{label}")

    def reversal(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        """Transaction Reversal: accepted at once; the result (reversed, already reversed, or no such
        transaction) arrives at the ResultURL, as Daraja's does."""
        self._authorize(request)
        data = _json_object(request)
        if data.get("Initiator") != self.initiator_name or not hmac.compare_digest(
            str(data.get("SecurityCredential") or "").encode(), self.security_credential.encode()
        ):
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid Initiator")
        if data.get("CommandID") != "TransactionReversal":
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid CommandID")
        if str(data.get("RecieverIdentifierType") or "") != "11":
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid RecieverIdentifierType")
        receipt = str(data.get("TransactionID") or "")
        amount = _whole_amount(data.get("Amount"))
        urls = {}
        for key in ("ResultURL", "QueueTimeOutURL"):
            value = data.get(key)
            if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
                raise DarajaError(400, "400.002.02", f"Bad Request - Invalid {key}")
            urls[key] = value
        with self.store.lock:
            original = next(
                (
                    c
                    for c in self.store.find_charges(provider=PROVIDER)
                    if c.extra.get("receipt") == receipt and c.extra.get("kind") != "reversal"
                ),
                None,
            )
            earlier = [
                c
                for c in self.store.find_charges(provider=PROVIDER)
                if c.extra.get("kind") == "reversal" and c.extra.get("original") == receipt
            ]
            if original is None or (original.outcome is not None and original.outcome.result != Result.SUCCESS):
                code = "R000002"
            elif earlier:
                code = "R000001"
            elif str(amount) != str(int(float(original.amount))):
                code = "R000002"
            else:
                code = "0"
            conversation_id = f"AG_{datetime.now(NAIROBI):%Y%m%d}_{secrets.token_hex(10)}"
            charge = Charge(
                provider=PROVIDER,
                transaction_id=conversation_id,
                external_id=receipt,
                msisdn=original.msisdn if original else "",
                amount=str(amount),
                currency="KES",
                channel="reversal",
                outcome=None,
                extra={"kind": "reversal", "original": receipt, "code": code, "receipt": new_receipt(), **urls},
            )
            self.store.add_charge(charge)
        self.dispatcher.call_later(DECISION_SECONDS, partial(self._reversal_deliver, charge))
        return json_response(
            200,
            {
                "OriginatorConversationID": _conversation_id(),
                "ConversationID": conversation_id,
                "ResponseCode": "0",
                "ResponseDescription": "Accept the service request successfully.",
            },
        )

    def _reversal_deliver(self, charge: Charge) -> None:
        code = charge.extra["code"]
        descriptions = {
            "0": "The service request is processed successfully.",
            "R000001": "The transaction has already been reversed",
            "R000002": "The OriginalTransactionID is invalid",
        }
        result: dict[str, Any] = {
            "ResultType": 0,
            "ResultCode": code if code != "0" else 0,
            "ResultDesc": descriptions[code],
            "OriginatorConversationID": _conversation_id(),
            "ConversationID": charge.transaction_id,
            "TransactionID": charge.extra["receipt"],
        }
        if code == "0":
            result["ResultParameters"] = {
                "ResultParameter": [
                    {"Key": "Amount", "Value": int(charge.amount)},
                    {"Key": "OriginalTransactionID", "Value": charge.external_id},
                    {"Key": "TransCompletedTime", "Value": datetime.now(NAIROBI).strftime("%Y%m%d%H%M%S")},
                ]
            }
        body = json.dumps({"Result": result}).encode()
        self.dispatcher.post(charge, charge.extra["ResultURL"], body, label=f"reversal_{code}")


def _conversation_id() -> str:
    return f"{secrets.token_hex(2)}-{secrets.token_hex(2)}-{secrets.token_hex(12)}"


def _json_object(request: SandboxRequest) -> dict[str, Any]:
    try:
        data = request.json()
    except BadRequestBody as exc:
        raise DarajaError(400, "400.002.02", f"Bad Request - {exc}") from exc
    if not isinstance(data, dict):
        raise DarajaError(400, "400.002.02", "Bad Request - the body must be a JSON object")
    return data


def _whole_amount(value: Any) -> int:
    if isinstance(value, bool):
        raise DarajaError(400, "400.002.02", "Bad Request - Invalid Amount")
    if isinstance(value, int):
        amount = value
    elif isinstance(value, str) and value.isdigit():
        amount = int(value)
    else:  # "10.00", 10.5, 10.0: Daraja takes whole numbers only (docs/providers/mpesa.md)
        raise DarajaError(400, "400.002.02", "Bad Request - Invalid Amount")
    if not 1 <= amount <= MAX_AMOUNT:
        raise DarajaError(400, "400.002.02", "Bad Request - Invalid Amount")
    return amount


def _phone(data: dict[str, Any], key: str) -> str:
    value = str(data.get(key) or "")
    if not MSISDN_RE.fullmatch(value):
        raise DarajaError(400, "400.002.02", f"Bad Request - Invalid {key}")
    return value
