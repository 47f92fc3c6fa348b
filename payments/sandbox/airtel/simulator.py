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
import hmac
import json
import logging
import re
import secrets
import time
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from django.conf import settings

from payments.providers.airtel.config import CONFIG as AIRTEL_CONFIG
from payments.providers.airtel.provider import AirtelProvider
from payments.providers.base import CallbackRole
from payments.sandbox.airtel import bodies
from payments.sandbox.airtel.bodies import KAMPALA, new_money_id
from payments.sandbox.airtel.checks import (
    COUNTRIES,
    INVALID_CLIENT,
    INVALID_TOKEN,
    MAX_REFERENCE,
    MAX_TOKEN_LIFETIME,
    MIN_REFERENCE,
    PENDING_STATES,
    AirtelError,
    alphanumeric,
    amount_field,
    gateway_error,
    json_object,
    msisdn_field,
    object_field,
    refused,
    transaction_id_field,
)
from payments.sandbox.airtel.money import AirtelMoneyRoutes
from payments.sandbox.base import (
    Endpoint,
    Route,
    SandboxContext,
    Simulator,
    dispatch_table,
    endpoint,
    mask_msisdn,
)
from payments.sandbox.ledger import AirtelBalanceRoutes
from payments.sandbox.outcomes import PENDING, Outcome, Result, outcome_for_phone
from payments.sandbox.protocol import SandboxRequest, SandboxResponse, json_response
from payments.sandbox.store import Charge, IssuedToken, utc_now

logger = logging.getLogger("payments.sandbox.airtel")

PROVIDER = "airtel"
PREFIX = "/airtel"


class AirtelSimulator(AirtelMoneyRoutes, AirtelBalanceRoutes, Simulator):
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
            *self.balance_endpoints(),  # the wallet balance (payments/sandbox/ledger.py)
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
        data = json_object(request)
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
        data = json_object(request)
        reference = data.get("reference")
        if not isinstance(reference, str) or not alphanumeric(reference, MIN_REFERENCE, MAX_REFERENCE):
            raise refused("reference must be 4 to 64 letters and digits.", result_code="ESB000008")
        subscriber = object_field(data, "subscriber")
        transaction = object_field(data, "transaction")
        for part in (subscriber, transaction):
            if part.get("country", country) != country:
                raise refused("Invalid Country Name", result_code="ESB000034")
            if part.get("currency", currency) != currency:
                raise refused("Invalid Currency Code", result_code="ESB000035")
        msisdn = msisdn_field(subscriber.get("msisdn"), country)
        amount = amount_field(transaction.get("amount"), currency, "DP00800001004")
        transaction_id = transaction_id_field(transaction.get("id"))
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
        return bodies.collection_callback(
            transaction_id=charge.external_id,
            money_id=charge.transaction_id,
            result=result,
            currency=charge.currency,
            amount=charge.amount,
            secret=self.callback_secret or None,
        )

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
        if state == PENDING:
            answer = bodies.enquiry_answer(
                transaction_id=charge.external_id,
                state=PENDING_STATES[queries % 2],
                message="In process",
                response_code="DP00800001006",
            )
        else:
            airtel_state, response_code, message = bodies.COLLECTION_RESULTS[Result(state)]
            answer = bodies.enquiry_answer(
                transaction_id=charge.external_id,
                state=airtel_state,
                message=message,
                response_code=response_code,
                money_id=charge.transaction_id,
            )
        return json_response(200, answer)  # status.success always false, as Airtel's own example of a TS

    def _find(self, kind: str, transaction_id: str) -> Charge | None:
        return next(
            (
                c
                for c in self.store.find_charges(provider=PROVIDER, external_id=transaction_id)
                if c.extra["kind"] == kind
            ),
            None,
        )
