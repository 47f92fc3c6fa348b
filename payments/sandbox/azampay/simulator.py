"""Simulated AzamPay: the authenticator (/azampay-auth) and the checkout API (/azampay).

Shapes follow docs/providers/azampay.md: the real sandbox's token body,
its 423 for bad credentials, ASP.NET ProblemDetails for validation errors, the MNO/bank/hosted checkouts, the
partners list, the status query and the callback as integrators logged it (A.7.2; built in bodies.py; the hosted
page in hosted.py). AzamPay has no per-request callback URL (one per app, set on the dashboard), so callbacks
go to the sandbox's configured URL.
"""

import base64
import hmac
import json
import logging
import re
import secrets
import time
import uuid
from datetime import timedelta
from functools import partial
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings

from payments.providers.azampay.config import CONFIG as AZAMPAY_CONFIG
from payments.sandbox.azampay import bodies
from payments.sandbox.azampay.checks import (
    API_PREFIX,
    AUTH_PREFIX,
    BANK_PROVIDERS,
    CALLBACK_PATH,
    CHECKOUT_ACCEPTED,
    CRYPTOJS_PREFIX,
    DEFAULT_CALLBACK_PASSWORD,
    GENERATED_MESSAGE,
    MAX_EXTERNAL_ID,
    MNO_PROVIDERS,
    NOT_FOUND,
    PARTNER_CODES,
    PROVIDER,
    TOKEN_REFUSED,
    UNAUTHORIZED,
    Problem,
    amount_field,
    external_id_field,
    json_object,
    msisdn_field,
    problem_response,
)
from payments.sandbox.azampay.hosted import HostedCheckoutRoutes
from payments.sandbox.base import (
    Endpoint,
    Route,
    SandboxContext,
    Simulator,
    dispatch_table,
    endpoint,
    mask_msisdn,
)
from payments.sandbox.outcomes import Outcome, Result, outcome_for_phone
from payments.sandbox.protocol import (
    SandboxRequest,
    SandboxResponse,
    error_json,
    json_response,
)
from payments.sandbox.store import Charge, IssuedToken, utc_now

logger = logging.getLogger("payments.sandbox.azampay")


def default_callback_url() -> str:
    return f"{settings.SITE_URL.rstrip('/')}{CALLBACK_PATH}"


class AzamPaySimulator(HostedCheckoutRoutes, Simulator):
    name = PROVIDER

    def __init__(
        self,
        context: SandboxContext,
        *,
        credentials: dict[str, str] | None = None,
        callback_password: str | None = None,
        private_key: rsa.RSAPrivateKey | None = None,
    ) -> None:
        super().__init__(context)
        creds = credentials or AZAMPAY_CONFIG.sandbox_credentials()
        self.app_name = creds["app_name"]
        self.client_id = creds["client_id"]
        self.client_secret = creds["client_secret"]
        self.vendor_id = creds.get("vendor_id", "")
        if callback_password is None:
            configured = settings.PAYMENT_PROVIDERS.get("azampay", {}).get("callback_password", "")
            callback_password = configured or DEFAULT_CALLBACK_PASSWORD
        self.callback_password = callback_password
        # A fresh key per run: nothing to leak, and the site fetches it from the public-key endpoints.
        self.private_key = private_key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_key_pem = (
            self.private_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
        self.auth_endpoints: list[Endpoint] = [
            endpoint("POST", r"/AppRegistration/GenerateToken", self.generate_token),
            endpoint("GET", r"/api/Token/PublicKey", self.public_key),
        ]
        self.api_endpoints: list[Endpoint] = [
            endpoint("POST", r"/azampay/mno/checkout", self.mno_checkout),
            endpoint("POST", r"/azampay/bank/checkout", self.bank_checkout),
            endpoint("POST", r"/api/v1/Partner/PostCheckout", self.post_checkout),
            endpoint("GET", r"/api/v1/Partner/GetPaymentPartners", self.payment_partners),
            endpoint("GET", r"/azampay/gettransactionstatus", self.transaction_status),
            endpoint("GET", r"/azampay/v1/public-key", self.public_key),
            endpoint("GET,POST", r"/checkout/(?P<transaction_id>[0-9a-f]{32})", self.checkout_page),
        ]

    def routes(self) -> dict[str, Route]:
        return {AUTH_PREFIX: self.handle_auth, API_PREFIX: self.handle_api}

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "app_name": self.app_name,
            "client_id": self.client_id,
            "callback_url": self.context.callback_url,
            "outcomes": "by the payer number's last two digits, see docs/api.md",
        }

    def handle_auth(self, request: SandboxRequest, subpath: str) -> SandboxResponse:
        return self._dispatch(request, subpath, self.auth_endpoints)

    def handle_api(self, request: SandboxRequest, subpath: str) -> SandboxResponse:
        return self._dispatch(request, subpath, self.api_endpoints)

    def _dispatch(self, request: SandboxRequest, subpath: str, table: list[Endpoint]) -> SandboxResponse:
        try:
            return dispatch_table(
                request,
                subpath,
                table,
                not_found=lambda: error_json(404, f"AzamPay sandbox has no endpoint {subpath}"),
                method_not_allowed=lambda: error_json(405, f"{request.method} is not allowed on {subpath}"),
            )
        except Problem as exc:
            return problem_response(exc.errors)

    # --- authenticator ---------------------------------------------------------------------------------

    def generate_token(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        data = json_object(request)
        errors = {
            field: [f"The {field} field is required."]
            for field, key in (("AppName", "appName"), ("ClientId", "clientId"), ("ClientSecret", "clientSecret"))
            if not isinstance(data.get(key), str) or not data.get(key)
        }
        if errors:
            raise Problem(errors)
        given = (data["appName"], data["clientId"], data["clientSecret"])
        expected = (self.app_name, self.client_id, self.client_secret)
        # Compare all three every time (no early exit), as a real authenticator should.
        matches = [hmac.compare_digest(g.encode(), e.encode()) for g, e in zip(given, expected, strict=True)]
        if not all(matches):
            logger.info("AzamPay sandbox refused a token request (wrong app name, client id or secret)")
            return json_response(423, TOKEN_REFUSED)
        token = CRYPTOJS_PREFIX + base64.b64encode(secrets.token_bytes(48)).decode()
        lifetime = self.context.token_lifetime
        expires_at = utc_now() + timedelta(seconds=lifetime)
        self.store.add_token(
            token, IssuedToken(provider=PROVIDER, expires_mono=time.monotonic() + lifetime, expires_at=expires_at)
        )
        return json_response(
            200,
            {
                "data": {"accessToken": token, "expire": expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")},
                "message": GENERATED_MESSAGE,
                "success": True,
                "statusCode": 200,
            },
        )

    def public_key(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        key_format = request.query.get("format", "Pem")
        if key_format.lower() != "pem":
            return json_response(400, {"success": False, "message": "The sandbox serves its key as Pem only."})
        return json_response(200, {"success": True, "format": "Pem", "publicKey": self.public_key_pem})

    # --- checkouts -----------------------------------------------------------------------------------------

    def _authorized(self, request: SandboxRequest) -> bool:
        scheme, _, token = request.header("authorization").partition(" ")
        return scheme.lower() == "bearer" and self.store.token_valid(PROVIDER, token.strip())

    def mno_checkout(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        if not self._authorized(request):
            return json_response(401, UNAUTHORIZED)
        data = json_object(request)
        errors: dict[str, list[str]] = {}
        msisdn = msisdn_field(data, "accountNumber", errors)
        amount = amount_field(data, "amount", errors)
        if data.get("currency") != "TZS":
            errors["currency"] = ['Only "TZS" is supported.']
        external_id = external_id_field(data, "externalId", MAX_EXTERNAL_ID, errors)
        operator = data.get("provider")
        if operator not in MNO_PROVIDERS:
            errors["provider"] = [f"provider must be one of {', '.join(MNO_PROVIDERS)} (case-sensitive)."]
        if data.get("additionalProperties") is not None and not isinstance(data.get("additionalProperties"), dict):
            errors["additionalProperties"] = ["additionalProperties must be an object."]
        if errors:
            raise Problem(errors)
        charge = self._new_charge(
            external_id=external_id,
            msisdn=msisdn,
            amount=amount,
            channel=str(operator),
            outcome=outcome_for_phone(msisdn),
            kind="mno",
        )
        return json_response(
            200, {"success": True, "transactionId": charge.transaction_id, "message": CHECKOUT_ACCEPTED}
        )

    def bank_checkout(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        if not self._authorized(request):
            return json_response(401, UNAUTHORIZED)
        data = json_object(request)
        errors: dict[str, list[str]] = {}
        amount = amount_field(data, "amount", errors)
        if (
            data.get("currencyCode") != "TZS"
        ):  # "currencyCode" here, "currency" on the MNO call (docs/providers/azampay.md)
            errors["currencyCode"] = ['Only "TZS" is supported.']
        msisdn = msisdn_field(data, "merchantMobileNumber", errors)
        external_id = external_id_field(data, "referenceId", MAX_EXTERNAL_ID, errors)
        bank = data.get("provider")
        if bank not in BANK_PROVIDERS:
            errors["provider"] = [f"provider must be one of {', '.join(BANK_PROVIDERS)}."]
        if errors:
            raise Problem(errors)
        # The account number and OTP are not checked: the portal's API does not collect them yet, and the
        # payer's number alone scripts the outcome.
        charge = self._new_charge(
            external_id=external_id,
            msisdn=msisdn,
            amount=amount,
            channel=str(bank),
            outcome=outcome_for_phone(msisdn),
            kind="bank",
        )
        return json_response(
            200, {"success": True, "msg": "", "data": {"properties": {"ReferenceID": charge.transaction_id}}}
        )

    def payment_partners(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        if not self._authorized(request):
            return json_response(401, UNAUTHORIZED)
        partners = [
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"azampay-sandbox-partner-{name}")),
                "logoUrl": f"https://sandbox.azampay.invalid/logos/{name.lower()}.png",
                "partnerName": name,
                "provider": code,
                "vendorName": self.app_name,
                "paymentVendorId": self.vendor_id,
                "paymentPartnerId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"azampay-sandbox-payment-partner-{name}")),
                "paymentAcknowledgmentRoute": f"https://sandbox.azampay.invalid/ack/{name.lower()}",
                "currency": "TZS",
                "status": "1",
                "vendorType": "Merchant",
                "partnerType": "MNO",
            }
            for name, code in PARTNER_CODES.items()
        ]
        return json_response(200, partners)

    # --- status query ----------------------------------------------------------------------------------

    def transaction_status(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        if not self._authorized(request):
            return json_response(401, UNAUTHORIZED)
        transaction_id = request.query.get("pgReferenceId", "").strip()
        if not transaction_id:
            raise Problem({"pgReferenceId": ["The pgReferenceId field is required."]})
        charge = self.store.get_charge(PROVIDER, transaction_id)
        if charge is None:
            return json_response(404, NOT_FOUND)
        answer = bodies.status_answer(
            state=charge.state(),
            amount=charge.amount,
            external_id=charge.external_id,
            transaction_id=charge.transaction_id,
            mnoreference=charge.extra["mnoreference"],
        )
        return json_response(200, answer)

    # --- charges and callbacks ---------------------------------------------------------------------------

    def _new_charge(
        self,
        *,
        external_id: str,
        msisdn: str,
        amount: str,
        channel: str,
        outcome: Outcome | None,
        kind: str,
        extra: dict[str, Any] | None = None,
    ) -> Charge:
        charge = Charge(
            provider=PROVIDER,
            transaction_id=uuid.uuid4().hex,
            external_id=external_id,
            msisdn=msisdn,
            amount=amount,
            currency="TZS",
            channel=channel,
            outcome=outcome,
            extra={"kind": kind, "mnoreference": str(uuid.uuid4()), **(extra or {})},
        )
        if outcome is not None:
            charge.decide_at = charge.created_mono + self.dispatcher.scaled(outcome.decide_after)
        self.store.add_charge(charge)
        if outcome is not None:
            self._schedule_callbacks(charge, outcome)
        logger.info(
            "AzamPay sandbox %s charge %s for %s (%s): outcome %s",
            kind,
            charge.transaction_id,
            mask_msisdn(msisdn),
            external_id,
            outcome.name if outcome else "awaiting payer",
        )
        return charge

    def _schedule_callbacks(self, charge: Charge, outcome: Outcome) -> None:
        for scripted in outcome.callbacks:
            self.dispatcher.call_later(scripted.after, partial(self._deliver, charge, scripted.result, scripted.copies))

    def callback_body(self, charge: Charge, result: Result) -> dict[str, Any]:
        return bodies.build_callback(
            transaction_id=charge.transaction_id,
            external_id=charge.external_id,
            amount=charge.amount,
            msisdn=charge.msisdn,
            operator=charge.channel,
            mnoreference=charge.extra["mnoreference"],
            success=result == Result.SUCCESS,
            message=bodies.CALLBACK_MESSAGE[result],
            password=self.callback_password,
            private_key=self.private_key,
        )

    def _deliver(self, charge: Charge, result: Result, copies: int) -> None:
        body = json.dumps(self.callback_body(charge, result)).encode()
        url = self.context.callback_url
        if copies > 1:
            self.dispatcher.post_burst(charge, url, body, label=result.value, copies=copies)
        else:
            self.dispatcher.post(charge, url, body, label=result.value)
