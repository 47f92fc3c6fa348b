"""Simulated Safaricom Daraja under /daraja: OAuth, STK push (M-Pesa Express), its callbacks, STK Push Query.

Shapes follow docs/providers/mpesa.md: Basic-auth token with
`expires_in` as a string, the `{requestId, errorCode, errorMessage}` error envelope, Password recomputed from
the passkey and Timestamp, whole-number Amount, 2547/2541 phones, AccountReference ≤ 12 and TransactionDesc
≤ 13, callbacks POSTed to the CallBackURL of each request (with the `Balance` item that has no `Value`), and
both pending answers of the query: HTTP 500 "The transaction is being processed" and HTTP 200 ResultCode
4999. Outcomes come from the phone number's last two digits (outcomes.py, docs/api.md). The bodies are
built in bodies.py; C2B, B2C and reversals live in money.py.
"""

import base64
import hmac
import json
import logging
import re
import secrets
import time
from datetime import timedelta
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from payments.providers.mpesa.config import CONFIG as MPESA_CONFIG
from payments.sandbox.base import Endpoint, Route, SandboxContext, Simulator, dispatch_table, endpoint, mask_msisdn
from payments.sandbox.daraja import bodies
from payments.sandbox.daraja.checks import DarajaError, error_envelope, json_object, msisdn_field, whole_amount
from payments.sandbox.daraja.ledger import DarajaLedgerRoutes
from payments.sandbox.daraja.money import DarajaMoneyRoutes
from payments.sandbox.outcomes import PENDING, Outcome, Result, outcome_for_phone
from payments.sandbox.protocol import SandboxRequest, SandboxResponse, json_response
from payments.sandbox.store import Charge, IssuedToken, utc_now

logger = logging.getLogger("payments.sandbox.daraja")

PROVIDER = "mpesa"
PREFIX = "/daraja"
TIMESTAMP_RE = re.compile(r"\d{14}")
SHORTCODE_RE = re.compile(r"\d{5,7}")
TRANSACTION_TYPES = ("CustomerPayBillOnline", "CustomerBuyGoodsOnline")


class DarajaSimulator(DarajaMoneyRoutes, DarajaLedgerRoutes, Simulator):
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
        self.endpoints += self.ledger_endpoints()  # Account Balance, Pull Transactions (ledger.py)

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
        scheme, _sep, encoded = request.header("authorization").partition(" ")
        if scheme.lower() != "basic":
            raise DarajaError(400, "400.008.01", "Invalid Authentication passed")
        try:
            key, _sep, secret = base64.b64decode(encoded.strip()).decode().partition(":")
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
        expected = bodies.stk_password(self.shortcode, self.passkey, timestamp)
        given = str(data.get("Password") or "")
        if shortcode != self.shortcode or not hmac.compare_digest(given.encode(), expected.encode()):
            raise DarajaError(500, "500.001.1001", "Wrong credentials")

    # --- STK push ----------------------------------------------------------------------------------------

    def stk_push(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        self._authorize(request)
        data = json_object(request)
        self._check_password(data)
        if data.get("TransactionType") not in TRANSACTION_TYPES:
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid TransactionType")
        amount = whole_amount(data.get("Amount"))
        phone = msisdn_field(data, "PartyA")
        if msisdn_field(data, "PhoneNumber") != phone:
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
        checkout_id = bodies.new_checkout_request_id()
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
                "merchant_request_id": bodies.new_conversation_id(),
                "callback_url": callback_url,
                "receipt": bodies.new_receipt(),
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
        code, desc, _ = bodies.RESULT_CODES[result]
        return bodies.build_stk_callback(
            merchant_request_id=charge.extra["merchant_request_id"],
            checkout_request_id=charge.transaction_id,
            result_code=code,
            result_desc=desc,
            amount=int(charge.amount),
            receipt=charge.extra["receipt"],
            phone=charge.msisdn,
            transaction_date=bodies.timestamp(),
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
        data = json_object(request)
        self._check_password(data)
        checkout_id = str(data.get("CheckoutRequestID") or "")
        charge = self.store.get_charge(PROVIDER, checkout_id)
        if charge is None:
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid CheckoutRequestID")
        with self.store.lock:
            charge.extra["queries"] += 1
            queries = charge.extra["queries"]
        state = charge.state()
        ids = {"merchant_request_id": charge.extra["merchant_request_id"], "checkout_request_id": checkout_id}
        if state == PENDING and queries % 2:
            # Both real pending answers (docs/providers/mpesa.md), alternating so every client meets both.
            return json_response(*bodies.stk_query_pending_500(checkout_id))
        return json_response(*bodies.stk_query_answer(**ids, result=None if state == PENDING else Result(state)))
