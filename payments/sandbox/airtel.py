"""Simulated Airtel Africa Open API under /airtel: OAuth, the RSA key, the USSD push (v1 and v2 paths), the
transaction enquiry, the collection callback, refunds and disbursements.

Shapes follow docs/providers/airtel.md: a JSON client-credentials token whose `expires_in` is a string (at most
180 s), OAuth errors (`invalid_client`, `invalid_token`), the routing headers X-Country / X-Currency checked
on every business call (missing → ROUTER110), MSISDNs without the country code and of the country's length
(ESB000033), whole amounts for zero-decimal currencies, business refusals as HTTP 200 with `success: false`
(a repeated `transaction.id` → ESB000041), the enquiry's state in `data.transaction.status` (TIP/TA while
pending, TS, TF) with an envelope whose `status.success` is always false (Airtel's own example shows false on
a TS: clients must not read it), and the optional v2 message signing (`x-signature`/`x-key`) verified when
sent. Outcomes come from the payer number's last two digits (outcomes.py, docs/api.md).

Airtel has one collection callback URL per app, set on its portal: callbacks go to the site of the sandbox's
callback URL, at the site's /webhooks/airtel/payment/ path, in Airtel's shape, with a top-level `hash`
(Base64 HMAC-SHA256 of the compact JSON of `transaction`, our convention for an unconfirmed input) when a
callback secret is set. Our own choices where Airtel documents nothing: a cancellation is `TF` with
"The payer cancelled the transaction." (DP00800001008), a prompt nobody answers is `TF` DP00800001024.

Disbursements answer synchronously (Airtel documents no disbursement callback), by the payee number's last two
digits: 01 → TF, DP00900001007 (insufficient funds); 03 → DP00900001000 ambiguous, the enquiry says TIP and
then TS; 06 → DP00900001006 processing, then TS; anything else → TS at once. The PIN must decrypt (RSA
PKCS#1 v1.5 or OAEP/SHA-1, with the key this simulator serves at /v1/rsa/encryption-keys) to the sandbox PIN.
Refunds: by `airtel_money_id` of a successful collection, once.
"""

import base64
import hashlib
import hmac
import json
import logging
import random
import re
import secrets
import string
import time
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from django.conf import settings

from payments.providers.airtel.config import CONFIG as AIRTEL_CONFIG
from payments.providers.airtel.provider import AirtelProvider
from payments.providers.base import CallbackRole
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

logger = logging.getLogger("payments.sandbox.airtel")

PROVIDER = "airtel"
PREFIX = "/airtel"
KAMPALA = ZoneInfo("Africa/Kampala")
MAX_TOKEN_LIFETIME = 180  # Airtel's tokens live about 3 minutes
# country → (currency, calling code, national number length). Zero-decimal currencies take integers only.
COUNTRIES: dict[str, tuple[str, str, int]] = {
    "UG": ("UGX", "256", 9),
    "KE": ("KES", "254", 9),
    "TZ": ("TZS", "255", 9),
    "ZM": ("ZMW", "260", 9),
    "RW": ("RWF", "250", 9),
    "MW": ("MWK", "265", 9),
    "MG": ("MGA", "261", 9),
    "CD": ("CDF", "243", 9),
    "CG": ("XAF", "242", 9),
    "NG": ("NGN", "234", 10),
}
ZERO_DECIMAL_CURRENCIES = ("UGX", "RWF", "XAF", "MGA", "TZS")
ALPHANUMERIC_RE = re.compile(r"[A-Za-z0-9]+")
MIN_ID, MAX_ID = 5, 80  # "alphanumeric characters with length between 5 and 80" (disbursement v2's refusal)
MIN_REFERENCE, MAX_REFERENCE = 4, 64

INVALID_CLIENT = {"error_description": "Invalid client authentication", "error": "invalid_client"}
INVALID_TOKEN = {"error_description": "The access token is invalid or has expired", "error": "invalid_token"}

# Result → (transaction state, response code, message) of a collection.
COLLECTION_RESULTS: dict[str, tuple[str, str, str]] = {
    Result.SUCCESS: ("TS", "DP00800001001", "success"),
    Result.INSUFFICIENT_FUNDS: ("TF", "DP00800001007", "Not enough balance"),
    Result.CANCELLED: ("TF", "DP00800001008", "The payer cancelled the transaction."),
    Result.TIMEOUT: ("TF", "DP00800001024", "Transaction Timed Out"),
    Result.DECLINED: ("TF", "DP00800001009", "Do not honor"),
    Result.FAILED: ("TF", "DP00800001009", "Transaction failed"),
}
PENDING_STATES = ("TIP", "TA")  # alternated, so every client meets both

DISBURSEMENT_OUTCOMES: dict[str, Outcome] = {
    "01": Outcome("insufficient_funds", Result.INSUFFICIENT_FUNDS, 0.0, (), "TF: insufficient funds"),
    "03": Outcome("ambiguous_then_paid", Result.SUCCESS, 3 * DECISION_SECONDS, (), "DP00900001000, later TS"),
    "06": Outcome("processing_then_paid", Result.SUCCESS, DECISION_SECONDS, (), "DP00900001006, later TS"),
}
DISBURSEMENT_PAID = Outcome("paid", Result.SUCCESS, 0.0, (), "TS at once")
REFUNDED = Outcome("refunded", Result.SUCCESS, 0.0, (), "refunded at once")


class AirtelError(Exception):
    """An answer in Airtel's words: `body` is sent as it is, with `status`."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(json.dumps(body))
        self.status = status
        self.body = body


def refused(message: str, *, result_code: str, response_code: str = "", code: str = "400") -> AirtelError:
    """A business refusal: HTTP 200 with `success: false` (Airtel's habit)."""
    status: dict[str, Any] = {"code": code, "message": message, "result_code": result_code, "success": False}
    if response_code:
        status["response_code"] = response_code
    return AirtelError(200, {"status": status})


def gateway_error(status: int, code: str, message: str) -> AirtelError:
    return AirtelError(status, {"status_message": message, "status_code": code})


def callback_hash(secret: str, transaction: dict[str, Any]) -> str:
    """Base64(HMAC-SHA256(secret, compact JSON of `transaction`)): written here again, on purpose (the simulator
    plays Airtel and shares no code with its client)."""
    signed = json.dumps(transaction, separators=(",", ":")).encode()
    return base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()


def new_money_id(prefix: str = "MP") -> str:
    """An airtel_money_id in the shape of the docs' samples: MP210603.1234.L06941."""
    now = datetime.now(KAMPALA)
    return f"{prefix}{now:%y%m%d}.{now:%H%M}.{random.choice(string.ascii_uppercase)}{random.randrange(10**5):05d}"


class AirtelSimulator(Simulator):
    name = PROVIDER

    def __init__(
        self,
        context: SandboxContext,
        *,
        credentials: dict[str, str] | None = None,
        callback_secret: str | None = None,
        private_key: rsa.RSAPrivateKey | None = None,
    ) -> None:
        super().__init__(context)
        creds = credentials or AIRTEL_CONFIG.sandbox_credentials()
        self.client_id = creds["client_id"]
        self.client_secret = creds["client_secret"]
        self.disbursement_pin = str(creds.get("disbursement_pin", ""))
        if callback_secret is None:
            # The site's secret when it has Airtel configured (sign only when set), else the sandbox's own.
            site = getattr(settings, "PAYMENT_PROVIDERS", {}).get(PROVIDER)
            callback_secret = site.get("callback_secret", "") if site is not None else creds.get("callback_secret", "")
        self.callback_secret = callback_secret or ""
        # A fresh key per run: the site fetches it from /v1/rsa/encryption-keys when it has none configured.
        self.private_key = private_key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_key_der = base64.b64encode(
            self.private_key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).decode()
        self.endpoints: list[Endpoint] = [
            endpoint("POST", r"/auth/oauth2/token", self.token),
            endpoint("GET", r"/v1/rsa/encryption-keys", self.encryption_keys),
            endpoint("POST", r"/merchant/v(?P<version>[12])/payments", self.push),
            endpoint("POST", r"/standard/v1/payments/refund", self.refund),
            endpoint("GET", r"/standard/v1/payments/(?P<id>[^/]+)", self.enquiry),
            endpoint("POST", r"/standard/v1/disbursements", self.disburse),
            endpoint("GET", r"/standard/v1/disbursements/(?P<id>[^/]+)", self.disbursement_enquiry),
        ]

    def routes(self) -> dict[str, Route]:
        return {PREFIX: self.handle}

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "client_id": self.client_id,
            "callback_url": self.callback_url(),
            "callbacks_signed": bool(self.callback_secret),
            "outcomes": "by the payer number's last two digits, see docs/api.md",
        }

    def callback_url(self) -> str:
        """The site of the sandbox's callback URL, at the path the site declares for Airtel's callback."""
        parts = urlsplit(self.context.callback_url)
        route = AirtelProvider.route_for(CallbackRole.PAYMENT)
        path = route.path if route else "webhooks/airtel/payment"
        return f"{parts.scheme}://{parts.netloc}/{path}/"

    def handle(self, request: SandboxRequest, subpath: str) -> SandboxResponse:
        try:
            return dispatch_table(
                request,
                subpath,
                self.endpoints,
                not_found=lambda: json_response(404, {"status_message": "Resource not found", "status_code": "404"}),
                method_not_allowed=lambda: json_response(
                    405, {"status_message": "Method not allowed", "status_code": "405"}
                ),
            )
        except AirtelError as exc:
            return json_response(exc.status, exc.body)

    # --- auth ------------------------------------------------------------------------------------------

    def token(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        data = _json_object(request)
        given = (str(data.get("client_id") or ""), str(data.get("client_secret") or ""))
        matches = [
            hmac.compare_digest(given[0].encode(), self.client_id.encode()),
            hmac.compare_digest(given[1].encode(), self.client_secret.encode()),
        ]
        if data.get("grant_type") != "client_credentials" or not all(matches):
            logger.info("Airtel sandbox refused a token request (wrong client id, secret or grant type)")
            raise AirtelError(400, INVALID_CLIENT)
        token = secrets.token_urlsafe(24)
        lifetime = min(self.context.token_lifetime, MAX_TOKEN_LIFETIME)
        self.store.add_token(
            token,
            IssuedToken(
                provider=PROVIDER,
                expires_mono=time.monotonic() + lifetime,
                expires_at=utc_now() + timedelta(seconds=lifetime),
            ),
        )
        # "expires_in" as a string, as the docs copy shows it.
        return json_response(200, {"token_type": "bearer", "access_token": token, "expires_in": str(lifetime)})

    def _authorize(self, request: SandboxRequest) -> None:
        scheme, _, token = request.header("authorization").partition(" ")
        if scheme.lower() != "bearer" or not self.store.token_valid(PROVIDER, token.strip()):
            raise AirtelError(401, INVALID_TOKEN)

    def _routing(self, request: SandboxRequest) -> tuple[str, str]:
        """X-Country and X-Currency, as the gateway checks them before anything else."""
        country = request.header("x-country").strip()
        currency = request.header("x-currency").strip()
        if not country:
            raise gateway_error(400, "ROUTER110", "Partner country not found")
        if country not in COUNTRIES:
            raise gateway_error(400, "ROUTER006", "Invalid country code provided.")
        if currency != COUNTRIES[country][0]:
            raise gateway_error(400, "ROUTER112", "Invalid currency provided.")
        return country, currency

    def encryption_keys(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        self._authorize(request)
        self._routing(request)
        valid_upto = datetime.now(KAMPALA) + timedelta(days=30)
        return json_response(
            200,
            {
                "data": {"key_id": 100, "key": self.public_key_der, "valid_upto": f"{valid_upto:%d-%m-%Y %H:%M:%S}"},
                "status": {
                    "code": "200",
                    "message": "SUCCESS",
                    "response_code": "DP02010001001",
                    "result_code": "ESB000010",
                    "success": True,
                },
            },
        )

    # --- collections -------------------------------------------------------------------------------------

    def push(self, request: SandboxRequest, found: re.Match[str]) -> SandboxResponse:
        self._authorize(request)
        country, currency = self._routing(request)
        self._check_signature(request, version=found["version"])
        data = _json_object(request)
        reference = data.get("reference")
        if not isinstance(reference, str) or not _alphanumeric(reference, MIN_REFERENCE, MAX_REFERENCE):
            raise refused("reference must be 4 to 64 letters and digits.", result_code="ESB000008")
        subscriber = _object(data, "subscriber")
        transaction = _object(data, "transaction")
        for part in (subscriber, transaction):
            if part.get("country", country) != country:
                raise refused("Invalid Country Name", result_code="ESB000034")
            if part.get("currency", currency) != currency:
                raise refused("Invalid Currency Code", result_code="ESB000035")
        msisdn = _msisdn(subscriber.get("msisdn"), country)
        amount = _amount(transaction.get("amount"), currency, "DP00800001004")
        transaction_id = _transaction_id(transaction.get("id"))
        with self.store.lock:
            if self._find("collection", transaction_id) is not None:
                # Airtel's own answer, DP00800001000 included (docs/providers/airtel.md, "Collection").
                raise refused(
                    "External Transaction ID already exists.",
                    result_code="ESB000041",
                    response_code="DP00800001000",
                    code="500",
                )
            charge = self._new_collection(transaction_id, msisdn, amount, currency, outcome_for_phone(msisdn))
        return json_response(
            200,
            {
                "data": {"transaction": {"id": charge.external_id, "status": "SUCCESS"}},
                "status": {
                    "code": "200",
                    "message": "SUCCESS",
                    "result_code": "ESB000010",
                    "response_code": "DP00800001006",
                    "success": True,
                },
            },
        )

    def _check_signature(self, request: SandboxRequest, *, version: str) -> None:
        """v2 message signing, verified when the headers come (path version and signing are independent)."""
        signature, key = request.header("x-signature"), request.header("x-key")
        if not signature and not key:
            return
        forbidden = refused(
            "Forbidden: X-signature and payload did not match",
            result_code="ESB000008",
            response_code="DP00800001026",
            code="403",
        )
        try:
            secret = self.private_key.decrypt(base64.b64decode(key), rsa_padding.PKCS1v15()).decode()
            aes_key, _, iv = (base64.b64decode(part) for part in secret.partition(":"))
            decryptor = Cipher(algorithms.AES(aes_key), modes.CBC(iv)).decryptor()
            padded = decryptor.update(base64.b64decode(signature)) + decryptor.finalize()
            unpadder = padding.PKCS7(algorithms.AES.block_size).unpadder()
            payload = unpadder.update(padded) + unpadder.finalize()
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise forbidden from exc
        if not hmac.compare_digest(payload, request.body):
            raise forbidden

    def _new_collection(self, transaction_id: str, msisdn: str, amount: str, currency: str, outcome: Outcome) -> Charge:
        charge = Charge(
            provider=PROVIDER,
            transaction_id=new_money_id(),
            external_id=transaction_id,
            msisdn=msisdn,
            amount=amount,
            currency=currency,
            channel="ussd_push",
            outcome=outcome,
            extra={"kind": "collection", "callback_url": self.callback_url(), "queries": 0},
        )
        charge.decide_at = charge.created_mono + self.dispatcher.scaled(outcome.decide_after)
        self.store.add_charge(charge)
        for scripted in outcome.callbacks:
            self.dispatcher.call_later(scripted.after, partial(self._deliver, charge, scripted.result, scripted.copies))
        logger.info("Airtel sandbox push %s for %s: outcome %s", transaction_id, mask_msisdn(msisdn), outcome.name)
        return charge

    def callback_body(self, charge: Charge, result: Result) -> dict[str, Any]:
        state, _, message = COLLECTION_RESULTS[result]
        if result == Result.SUCCESS:
            message = (
                f"Paid {charge.currency} {int(Decimal(charge.amount)):,} to DONATION PORTAL "
                f"Charge {charge.currency} 0, Trans ID {charge.transaction_id}."
            )
        transaction = {
            "id": charge.external_id,
            "message": message,
            "status_code": state,
            "airtel_money_id": charge.transaction_id,
        }
        body: dict[str, Any] = {"transaction": transaction}
        if self.callback_secret:
            body["hash"] = callback_hash(self.callback_secret, transaction)
        return body

    def _deliver(self, charge: Charge, result: Result, copies: int) -> None:
        body = json.dumps(self.callback_body(charge, result)).encode()
        url = charge.extra["callback_url"]
        if copies > 1:
            self.dispatcher.post_burst(charge, url, body, label=result.value, copies=copies)
        else:
            self.dispatcher.post(charge, url, body, label=result.value)

    def enquiry(self, request: SandboxRequest, found: re.Match[str]) -> SandboxResponse:
        self._authorize(request)
        self._routing(request)
        charge = self._find("collection", found["id"])
        if charge is None:
            raise refused("No Transaction Found With Provided Transaction Id.", result_code="ESB000045", code="404")
        with self.store.lock:
            charge.extra["queries"] += 1
            queries = charge.extra["queries"]
        state = charge.state()
        transaction: dict[str, Any] = {"id": charge.external_id}
        if state == PENDING:
            transaction.update({"status": PENDING_STATES[queries % 2], "message": "In process"})
            response_code = "DP00800001006"
        else:
            airtel_state, response_code, message = COLLECTION_RESULTS[Result(state)]
            transaction.update({"status": airtel_state, "message": message, "airtel_money_id": charge.transaction_id})
        return json_response(
            200,
            {
                "data": {"transaction": transaction},
                # Always false, as Airtel's own example of a TS: clients must read data.transaction.status.
                "status": {
                    "code": "200",
                    "message": "SUCCESS",
                    "result_code": "ESB000010",
                    "response_code": response_code,
                    "success": False,
                },
            },
        )

    def refund(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        self._authorize(request)
        _, currency = self._routing(request)
        transaction = _object(_json_object(request), "transaction")
        money_id = transaction.get("airtel_money_id")
        if not isinstance(money_id, str) or not money_id:
            raise refused("transaction.airtel_money_id is required.", result_code="ESB000008")
        with self.store.lock:
            original = self.store.get_charge(PROVIDER, money_id)
            if original is None or original.extra.get("kind") != "collection":
                raise refused("No Transaction Found With Provided Transaction Id.", result_code="ESB000045", code="404")
            if original.state() != Result.SUCCESS:
                raise refused("Only a successful transaction can be refunded.", result_code="ESB000011")
            if original.extra.get("refunded_by"):
                raise refused("The transaction was already refunded.", result_code="ESB000011")
            refund = Charge(
                provider=PROVIDER,
                transaction_id=new_money_id("CI"),
                external_id=money_id,
                msisdn=original.msisdn,
                amount=original.amount,
                currency=currency,
                channel="refund",
                outcome=REFUNDED,
                extra={"kind": "refund", "of": original.external_id},
            )
            refund.decide_at = refund.created_mono
            original.extra["refunded_by"] = refund.transaction_id
            self.store.add_charge(refund)
        logger.info("Airtel sandbox refund %s of %s", refund.transaction_id, money_id)
        return json_response(
            200,
            {
                "data": {"transaction": {"airtel_money_id": refund.transaction_id, "status": "SUCCESS"}},
                "status": {"code": "200", "message": "SUCCESS", "result_code": "ESB000010", "success": True},
            },
        )

    # --- disbursements -----------------------------------------------------------------------------------

    def disburse(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        self._authorize(request)
        country, currency = self._routing(request)
        data = _json_object(request)
        payee = _object(data, "payee")
        transaction = _object(data, "transaction")
        msisdn = _msisdn(payee.get("msisdn"), country)
        reference = data.get("reference")
        if not isinstance(reference, str) or not _alphanumeric(reference, MIN_REFERENCE, MAX_REFERENCE):
            raise refused("reference must be 4 to 64 letters and digits.", result_code="ESB000008")
        self._check_pin(data.get("pin"))
        amount = _amount(transaction.get("amount"), currency, "DP00900001004")
        transaction_id = _transaction_id(transaction.get("id"))
        outcome = DISBURSEMENT_OUTCOMES.get(msisdn[-2:], DISBURSEMENT_PAID)
        with self.store.lock:
            if self._find("disbursement", transaction_id) is not None:
                raise refused(
                    "Duplicate Transaction Id.", result_code="ESB000041", response_code="DP00900001017", code="500"
                )
            charge = Charge(
                provider=PROVIDER,
                transaction_id=new_money_id("DS"),
                external_id=transaction_id,
                msisdn=msisdn,
                amount=amount,
                currency=currency,
                channel="disbursement",
                outcome=outcome,
                extra={"kind": "disbursement", "reference_id": f"{secrets.randbelow(10**10):010d}"},
            )
            charge.decide_at = charge.created_mono + self.dispatcher.scaled(outcome.decide_after)
            self.store.add_charge(charge)
        logger.info("Airtel sandbox disbursement %s to %s: %s", transaction_id, mask_msisdn(msisdn), outcome.name)
        if outcome.result == Result.INSUFFICIENT_FUNDS:
            raise refused(
                "Not enough funds in account to complete the transaction.",
                result_code="ESB000011",
                response_code="DP00900001007",
            )
        suffix = msisdn[-2:]
        if suffix == "03":
            state, response_code, message = "TA", "DP00900001000", "Transaction is ambiguous: do an enquiry."
        elif suffix == "06":
            state, response_code, message = "TIP", "DP00900001006", "Transaction is in process."
        else:
            state, response_code = "TS", "DP00900001001"
            message = (
                f"Trans.ID : {charge.transaction_id}. You have sent {currency} {amount} to {msisdn}. "
                "Your balance is UGX 1,000,000."
            )
        return json_response(
            200,
            {
                "data": {
                    "transaction": {
                        "reference_id": charge.extra["reference_id"],
                        "airtel_money_id": charge.transaction_id,
                        "id": transaction_id,
                        "status": state,
                    }
                },
                "status": {
                    "code": "200",
                    "message": message,
                    "result_code": "ESB000010",
                    "response_code": response_code,
                    "success": state == "TS",
                },
            },
        )

    def _check_pin(self, value: object) -> None:
        if not isinstance(value, str) or not value:
            raise gateway_error(400, "ROUTER003", "Mandatory parameters are missing either in the header or body.")
        try:
            encrypted = base64.b64decode(value, validate=True)
        except ValueError as exc:
            raise gateway_error(400, "ROUTER116", "The encrypted value of the pin is incorrect.") from exc
        oaep = rsa_padding.OAEP(mgf=rsa_padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303
        try:
            pin = self.private_key.decrypt(encrypted, oaep)
        except ValueError:
            try:
                # PKCS#1 v1.5 decryption never fails loudly (implicit rejection): a wrong one gives noise.
                pin = self.private_key.decrypt(encrypted, rsa_padding.PKCS1v15())
            except ValueError as exc:
                raise gateway_error(400, "ROUTER116", "The encrypted value of the pin is incorrect.") from exc
        if not hmac.compare_digest(pin, self.disbursement_pin.encode()):
            raise gateway_error(400, "ROUTER115", "Pin you have entered is incorrect.")

    def disbursement_enquiry(self, request: SandboxRequest, found: re.Match[str]) -> SandboxResponse:
        self._authorize(request)
        self._routing(request)
        charge = self._find("disbursement", found["id"])
        if charge is None:
            raise refused("No Transaction Found With Provided Transaction Id.", result_code="ESB000045", code="404")
        state = charge.state()
        if state == PENDING:
            transaction = {"id": charge.external_id, "status": "TIP", "message": "Transaction is in process."}
            response_code = "DP00900001006"
        elif state == Result.SUCCESS:
            transaction = {
                "id": charge.external_id,
                "status": "TS",
                "message": "Transaction is successful.",
                "airtel_money_id": charge.transaction_id,
            }
            response_code = "DP00900001001"
        else:
            transaction = {"id": charge.external_id, "status": "TF", "message": "Insufficient funds."}
            response_code = "DP00900001007"
        return json_response(
            200,
            {
                "data": {"transaction": transaction},
                "status": {
                    "code": "200",
                    "message": "SUCCESS",
                    "result_code": "ESB000010",
                    "response_code": response_code,
                    "success": state != PENDING,
                },
            },
        )

    def _find(self, kind: str, transaction_id: str) -> Charge | None:
        return next(
            (
                c
                for c in self.store.find_charges(provider=PROVIDER, external_id=transaction_id)
                if c.extra["kind"] == kind
            ),
            None,
        )


def _json_object(request: SandboxRequest) -> dict[str, Any]:
    try:
        data = request.json()
    except BadRequestBody as exc:
        raise gateway_error(400, "ROUTER003", f"Mandatory parameters are missing: {exc}") from exc
    if not isinstance(data, dict):
        raise gateway_error(400, "ROUTER003", "The body must be a JSON object.")
    return data


def _object(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise refused(f"{key} is required.", result_code="ESB000008")
    return value


def _alphanumeric(value: str, low: int, high: int) -> bool:
    return low <= len(value) <= high and ALPHANUMERIC_RE.fullmatch(value) is not None


def _msisdn(value: object, country: str) -> str:
    length = COUNTRIES[country][2]
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not text.isdigit() or len(text) != length:
        # Sent with its country code, a leading 0, or of the wrong length ("Do not send the country code").
        raise refused(f"Invalid Msisdn Length. Msisdn Length should be {length}", result_code="ESB000033", code="400")
    return text


def _amount(value: object, currency: str, invalid_code: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise refused("Invalid Amount", result_code="ESB000008", response_code=invalid_code)
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise refused("Invalid Amount", result_code="ESB000008", response_code=invalid_code) from exc
    whole = amount == amount.to_integral_value()
    if not amount.is_finite() or amount <= 0 or (currency in ZERO_DECIMAL_CURRENCIES and not whole):
        raise refused("Invalid Amount", result_code="ESB000008", response_code=invalid_code)
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -3:  # more than 3 decimals (121's mock refuses them)
        raise refused("Invalid Amount", result_code="ESB000008", response_code=invalid_code)
    return str(int(amount)) if whole else str(amount)


def _transaction_id(value: object) -> str:
    if not isinstance(value, str) or not _alphanumeric(value, MIN_ID, MAX_ID):
        raise refused(
            "transaction.id must not be null or blank and should only contain alphanumeric characters with length "
            "between 5 and 80 characters",
            result_code="ESB000008",
        )
    return value
