"""Simulated AzamPay: the authenticator (/azampay-auth) and the checkout API (/azampay).

Shapes follow docs/providers/azampay.md: the real sandbox's token body,
its 423 for bad credentials, ASP.NET ProblemDetails for validation errors, the MNO/bank/hosted checkouts, the
partners list, the status query and the callback as integrators logged it (A.7.2). AzamPay has no per-request
callback URL (one per app, set on the dashboard), so callbacks go to the sandbox's configured URL.
"""

import base64
import hmac
import html
import json
import logging
import re
import secrets
import time
import uuid
from datetime import timedelta
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.conf import settings

from payments.providers.azampay.config import CONFIG as AZAMPAY_CONFIG
from payments.providers.azampay.config import SANDBOX_CALLBACK_PASSWORD
from payments.sandbox.base import (
    Endpoint,
    Route,
    SandboxContext,
    Simulator,
    dispatch_table,
    endpoint,
    mask_msisdn,
)
from payments.sandbox.outcomes import CARD_FAILED, CARD_PAID, PENDING, Outcome, Result, outcome_for_phone
from payments.sandbox.protocol import (
    BadRequestBody,
    SandboxRequest,
    SandboxResponse,
    error_json,
    html_response,
    json_response,
    redirect_response,
    text_response,
)
from payments.sandbox.store import Charge, IssuedToken, utc_now

logger = logging.getLogger("payments.sandbox.azampay")

PROVIDER = "azampay"
AUTH_PREFIX = "/azampay-auth"
API_PREFIX = "/azampay"
# The site's AzamPay callback view (docs/api.md, "Provider callbacks"); the default target of every callback.
CALLBACK_PATH = "/api/v1.0/donors/payment/azampay/callback/"
# The password settings.py gives the site when PAYMENTS_SANDBOX_URL is set; used when the sandbox process
# itself has none configured, so both sides agree out of the box.
DEFAULT_CALLBACK_PASSWORD = SANDBOX_CALLBACK_PASSWORD

MNO_PROVIDERS = ("Airtel", "Tigo", "Halopesa", "Azampesa", "Mpesa")  # case-sensitive, as AzamPay checks them
BANK_PROVIDERS = ("CRDB", "NMB")
HOSTED_OPERATOR = "Card"
MSISDN_RE = re.compile(r"255\d{9}")
WHOLE_AMOUNT_RE = re.compile(r"[1-9]\d{0,11}")
MAX_EXTERNAL_ID = 128
MAX_HOSTED_EXTERNAL_ID = 30  # PostCheckout's limit (docs/providers/azampay.md)
CRYPTOJS_PREFIX = (
    "U2FsdGVkX1"  # real tokens look like CryptoJS output ("Salted__"), not a JWT (docs/providers/azampay.md)
)

CHECKOUT_ACCEPTED = "Your request has been received and is being processed."
GENERATED_MESSAGE = "Token generated successfully"
TOKEN_REFUSED = {
    "data": None,
    "message": "Provided detail is not valid for this app or secret key has been expired",
    "success": False,
    "statusCode": 423,
}
UNAUTHORIZED = {"message": "Please Provide Valid Authorization", "status": "Error"}
NOT_FOUND = {"success": False, "message": "Transaction not found"}

# Free text of the status query (docs/providers/azampay.md); the site maps it with its own STATUS_MAP.
STATUS_TEXT: dict[str, str] = {
    PENDING: "Transaction pending.",
    Result.SUCCESS: "Transaction successful.",
    Result.INSUFFICIENT_FUNDS: "Transaction failed: insufficient funds.",
    Result.CANCELLED: "Transaction cancelled by payer.",
    Result.TIMEOUT: "Transaction failed: timeout (no answer from payer).",
    Result.DECLINED: "Transaction failed: card declined.",
    Result.FAILED: "Transaction failed.",
}
# The callback's "message": the real success sample says "success"; failure wording is unconfirmed
# (docs/providers/azampay.md).
CALLBACK_MESSAGE: dict[Result, str] = {
    Result.SUCCESS: "success",
    Result.INSUFFICIENT_FUNDS: "Insufficient funds",
    Result.CANCELLED: "Cancelled by payer",
    Result.TIMEOUT: "No answer from payer (timeout)",
    Result.DECLINED: "Card declined",
    Result.FAILED: "Transaction failed",
}
SIGNED_FIELDS = (
    "utilityref",
    "externalreference",
    "transactionstatus",
    "operator",
)  # docs/providers/azampay.md, in order

# Numeric provider codes from docs/providers/azampay.md (airtel=2, tigo=3, halopesa=4, azampesa=5, Mpesa=10).
PARTNER_CODES = {"Airtel": 2, "Tigo": 3, "Halopesa": 4, "Azampesa": 5, "Mpesa": 10}


class Problem(Exception):
    """A validation failure, answered as ASP.NET ProblemDetails like the real gateway."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


def problem_response(errors: dict[str, list[str]]) -> SandboxResponse:
    return json_response(
        400,
        {
            "type": "https://tools.ietf.org/html/rfc7231#section-6.5.1",
            "title": "One or more validation errors occurred.",
            "status": 400,
            "traceId": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00",
            "errors": errors,
        },
        content_type="application/problem+json; charset=utf-8",
    )


def sign_callback(private_key: rsa.RSAPrivateKey, body: dict[str, Any]) -> str:
    """Base64 RSA PKCS#1 v1.5 / SHA-256 over utilityref+externalreference+transactionstatus+operator."""
    signed = "".join(str(body.get(name) or "") for name in SIGNED_FIELDS)
    return base64.b64encode(private_key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def build_callback(
    *,
    transaction_id: str,
    external_id: str,
    amount: str,
    msisdn: str,
    operator: str,
    mnoreference: str,
    success: bool,
    message: str,
    password: str | None,
    private_key: rsa.RSAPrivateKey | None = None,
) -> dict[str, Any]:
    """The callback body in the real-sample shape (docs/providers/azampay.md), plus password and optional signature.

    Shared with `manage.py simulate_callback` so a hand-made callback looks exactly like a simulated one.
    """
    body: dict[str, Any] = {
        "message": message,
        "transactionstatus": "success" if success else "failure",
        "operator": operator,
        "reference": transaction_id,
        "externalreference": transaction_id,
        "utilityref": external_id,
        "amount": amount,
        "transid": transaction_id,
        "msisdn": msisdn,
        "mnoreference": mnoreference,
    }
    if password is not None:
        body["password"] = password
    if private_key is not None:
        body["signature"] = sign_callback(private_key, body)
    return body


def default_callback_url() -> str:
    return f"{settings.SITE_URL.rstrip('/')}{CALLBACK_PATH}"


class AzamPaySimulator(Simulator):
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
        data = _json_object(request)
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
        data = _json_object(request)
        errors: dict[str, list[str]] = {}
        msisdn = _msisdn(data, "accountNumber", errors)
        amount = _amount(data, "amount", errors)
        if data.get("currency") != "TZS":
            errors["currency"] = ['Only "TZS" is supported.']
        external_id = _external_id(data, "externalId", MAX_EXTERNAL_ID, errors)
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
        data = _json_object(request)
        errors: dict[str, list[str]] = {}
        amount = _amount(data, "amount", errors)
        if (
            data.get("currencyCode") != "TZS"
        ):  # "currencyCode" here, "currency" on the MNO call (docs/providers/azampay.md)
            errors["currencyCode"] = ['Only "TZS" is supported.']
        msisdn = _msisdn(data, "merchantMobileNumber", errors)
        external_id = _external_id(data, "referenceId", MAX_EXTERNAL_ID, errors)
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

    def post_checkout(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        # AzamPay's own sample sends no bearer token here (docs/providers/azampay.md): accept none, refuse a bad one.
        if request.header("authorization") and not self._authorized(request):
            return json_response(401, UNAUTHORIZED)
        data = _json_object(request)
        errors: dict[str, list[str]] = {}
        amount = _amount(data, "amount", errors)
        if data.get("currency") != "TZS":
            errors["currency"] = ['Only "TZS" is supported.']
        external_id = _external_id(data, "externalId", MAX_HOSTED_EXTERNAL_ID, errors)
        if data.get("clientId") != self.client_id:
            errors["clientId"] = ["clientId does not belong to a registered application."]
        urls = {}
        for key in ("redirectSuccessURL", "redirectFailURL"):
            value = data.get(key)
            if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
                errors[key] = [f"{key} must be an absolute http(s) URL."]
            urls[key] = value
        cart = data.get("cart")
        items = cart.get("items") if isinstance(cart, dict) else None
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) and i.get("name") for i in items):
            errors["cart"] = ["cart.items must list at least one item with a name."]
        if errors:
            raise Problem(errors)
        charge = self._new_charge(
            external_id=external_id,
            msisdn="",
            amount=amount,
            channel=HOSTED_OPERATOR,
            outcome=None,
            kind="hosted",
            extra={
                "redirect_success_url": urls["redirectSuccessURL"],
                "redirect_fail_url": urls["redirectFailURL"],
                "vendor_name": str(data.get("vendorName") or data.get("appName") or self.app_name),
                "items": [str(i["name"]) for i in items],
            },
        )
        host = request.host or "127.0.0.1"
        return text_response(200, f"http://{host}{API_PREFIX}/checkout/{charge.transaction_id}")

    def checkout_page(self, request: SandboxRequest, found: re.Match[str]) -> SandboxResponse:
        charge = self.store.get_charge(PROVIDER, found["transaction_id"])
        if charge is None or charge.extra.get("kind") != "hosted":
            return html_response(
                404, _page("Checkout not found", "<p>This checkout does not exist (or the sandbox was reset).</p>")
            )
        if request.method == "GET":
            return html_response(200, self._checkout_html(charge))
        try:
            decision = request.form().get("decision", "")
        except BadRequestBody:
            decision = ""
        if decision not in ("pay", "fail"):
            return html_response(400, _page("Bad request", "<p>Press Pay or Fail.</p>"))
        with self.store.lock:
            if charge.outcome is None:  # the first press decides; a second press (back button) changes nothing
                charge.outcome = CARD_PAID if decision == "pay" else CARD_FAILED
                charge.decide_at = time.monotonic()
                self._schedule_callbacks(charge, charge.outcome)
                logger.info("AzamPay sandbox hosted checkout %s: payer pressed %s", charge.transaction_id, decision)
            paid = charge.outcome.result == Result.SUCCESS
        return redirect_response(charge.extra["redirect_success_url" if paid else "redirect_fail_url"])

    def _checkout_html(self, charge: Charge) -> str:
        esc = html.escape
        items = "".join(f"<li>{esc(name)}</li>" for name in charge.extra.get("items", []))
        summary = (
            f"<p><strong>{esc(charge.extra.get('vendor_name', ''))}</strong></p>"
            f"<p>Amount: <strong>TZS {esc(charge.amount)}</strong><br>Reference: {esc(charge.external_id)}</p>"
            f"<ul>{items}</ul>"
        )
        if charge.outcome is not None:
            done = "paid" if charge.outcome.result == Result.SUCCESS else "failed"
            return _page("AzamPay sandbox checkout", f"{summary}<p>This checkout is already {done}.</p>")
        buttons = (
            '<form method="post"><input type="hidden" name="decision" value="pay">'
            '<button type="submit">Pay</button></form>'
            '<form method="post"><input type="hidden" name="decision" value="fail">'
            '<button type="submit">Fail</button></form>'
        )
        return _page("AzamPay sandbox checkout", summary + buttons)

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
        state = charge.state()
        return json_response(
            200,
            {
                "data": STATUS_TEXT[state],
                "message": "Request successful.",
                "success": True,
                "statusCode": 200,
                "amount": charge.amount,
                "utilityref": charge.external_id,
                "reference": charge.transaction_id,
                # An operator receipt exists only once money moved.
                "mnoreference": charge.extra["mnoreference"] if state == Result.SUCCESS else "",
            },
        )

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
        return build_callback(
            transaction_id=charge.transaction_id,
            external_id=charge.external_id,
            amount=charge.amount,
            msisdn=charge.msisdn,
            operator=charge.channel,
            mnoreference=charge.extra["mnoreference"],
            success=result == Result.SUCCESS,
            message=CALLBACK_MESSAGE[result],
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


def _json_object(request: SandboxRequest) -> dict[str, Any]:
    try:
        data = request.json()
    except BadRequestBody as exc:
        raise Problem({"$": [str(exc)]}) from exc
    if not isinstance(data, dict):
        raise Problem({"$": ["The request body must be a JSON object."]})
    return data


def _amount(data: dict[str, Any], key: str, errors: dict[str, list[str]]) -> str:
    value = data.get(key)
    # Integers are accepted too (docs/providers/azampay.md); the string form is what gets echoed back.
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if isinstance(value, str) and WHOLE_AMOUNT_RE.fullmatch(value):
        return value
    errors[key] = [f'{key} must be a whole, positive number of shillings as a string, e.g. "1000".']
    return ""


def _msisdn(data: dict[str, Any], key: str, errors: dict[str, list[str]]) -> str:
    value = data.get(key)
    if isinstance(value, str) and MSISDN_RE.fullmatch(value):
        return value
    errors[key] = [f"{key} must be 255 followed by 9 digits, without + (e.g. 255712345678)."]
    return ""


def _external_id(data: dict[str, Any], key: str, limit: int, errors: dict[str, list[str]]) -> str:
    value = data.get(key)
    if isinstance(value, str) and value.strip() and len(value) <= limit and value.isascii():
        return value
    errors[key] = [f"{key} is required: at most {limit} ASCII characters."]
    return ""


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem}"
        "form{display:inline-block;margin-right:1rem}button{font-size:1.2rem;padding:.5rem 1.5rem}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
