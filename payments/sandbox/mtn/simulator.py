"""Simulated MTN MoMo Open API under /mtn: tokens, request to pay, disbursement transfers and refunds, their
status GETs, and callbacks PUT to each request's X-Callback-Url (the status object: bodies.py; test numbers and
refusals: scripts.py).

Shapes follow docs/providers/mtn.md: a token per product from `POST /{product}/token/` (Basic API user:key,
the product's `Ocp-Apim-Subscription-Key`, no body; wrong user or key → HTTP 500 `{"error": "login_failed"}`;
wrong subscription key → 401); every product call checks that product's subscription key, a Bearer token of
that product and `X-Target-Environment` (`sandbox` takes EUR only; `mtn<country>` its country's currency); a
money-moving POST needs a new UUID v4 `X-Reference-Id` (400 when it is not one, 409 `RESOURCE_ALREADY_EXIST`
when reused), `payerMessage`/`payeeNote` of at most 160 characters without `&` or `'`, and answers 202 with an
empty body. The status GET answers 404 `RESOURCE_NOT_FOUND` for a moment after the 202 (the transaction is
not visible yet), then the status object; the callback is that object, PUT once, without `referenceId`.

Outcomes come from the number's last two digits (outcomes.py, docs/api.md) — for a request to pay the payer's,
for a transfer the payee's, for a refund the refunded payment's payer — and MTN's own sandbox numbers
46733123450–46733123463 keep their documented meaning (docs/providers/mtn.md, "Sandbox test numbers"). Where
MTN's exact bodies are not captured (a 400, a refused Bearer token, a refund of an unknown payment) the
simulator answers in MTN's `{"code", "message"}` / `{"statusCode", "message"}` shapes with its own words.
"""

import hmac
import json
import logging
import math
import re
import secrets
import time
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from payments.providers.mtn.config import CONFIG as MTN_CONFIG
from payments.sandbox.base import (
    Endpoint,
    Route,
    SandboxContext,
    Simulator,
    dispatch_table,
    endpoint,
    mask_msisdn,
)
from payments.sandbox.ledger import MtnBalanceRoutes
from payments.sandbox.mtn import bodies
from payments.sandbox.mtn.scripts import (
    DUPLICATE,
    ENVIRONMENT_CURRENCIES,
    FORBIDDEN_ENVIRONMENT,
    INVALID_SUBSCRIPTION_KEY,
    INVALID_TOKEN,
    LOGIN_FAILED,
    NOT_FOUND,
    OFFICIAL_PAYEE,
    OFFICIAL_PAYER,
    MtnError,
    Script,
    bad_request,
    basic_credentials,
    checked_body,
    failing,
    positive,
    script_for,
)
from payments.sandbox.outcomes import (
    PENDING,
    Result,
    ScriptedCallback,
)
from payments.sandbox.protocol import SandboxRequest, SandboxResponse, json_response
from payments.sandbox.store import Charge, IssuedToken, utc_now

logger = logging.getLogger("payments.sandbox.mtn")

PROVIDER = "mtn"
PREFIX = "/mtn"
COLLECTION = "collection"
DISBURSEMENT = "disbursement"
REQUEST_TO_PAY = "requesttopay"
TRANSFER = "transfer"
REFUND = "refund"
# How long the status GET answers 404 after the 202 (scaled): shorter than the first callback, so a site that
# confirms a callback with the GET is not sent to the ladder by the quirk.
EARLY_404_SECONDS = 0.5
UUID4_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


class MtnSimulator(MtnBalanceRoutes, Simulator):
    name = PROVIDER

    def __init__(self, context: SandboxContext, *, credentials: dict[str, str] | None = None) -> None:
        super().__init__(context)
        creds = credentials or MTN_CONFIG.sandbox_credentials()
        self.api_user = creds["api_user"]
        self.api_key = creds["api_key"]
        self.subscription_keys = {
            COLLECTION: creds["collection_subscription_key"],
            DISBURSEMENT: creds["disbursement_subscription_key"],
        }
        # The Disbursement product uses the collection API user unless it has its own (as the adapter does).
        self.users = {
            COLLECTION: (self.api_user, self.api_key),
            DISBURSEMENT: (
                creds.get("disbursement_api_user") or self.api_user,
                creds.get("disbursement_api_key") or self.api_key,
            ),
        }
        self.endpoints: list[Endpoint] = [
            endpoint("POST", r"/(?P<product>collection|disbursement)/token", self.token),
            endpoint("POST", r"/collection/v1_0/requesttopay", self.request_to_pay),
            endpoint("GET", r"/collection/v1_0/requesttopay/(?P<ref>[^/]+)", partial(self.status, REQUEST_TO_PAY)),
            endpoint("POST", r"/disbursement/v1_0/transfer", self.transfer),
            endpoint("GET", r"/disbursement/v1_0/transfer/(?P<ref>[^/]+)", partial(self.status, TRANSFER)),
            endpoint("POST", r"/disbursement/v(?:1|2)_0/refund", self.refund),
            endpoint("GET", r"/disbursement/v1_0/refund/(?P<ref>[^/]+)", partial(self.status, REFUND)),
            *self.balance_endpoints(),  # each product's account balance (payments/sandbox/ledger.py)
        ]

    def routes(self) -> dict[str, Route]:
        return {PREFIX: self.handle}

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "api_user": self.api_user,
            "target_environments": ENVIRONMENT_CURRENCIES,
            "outcomes": "by the number's last two digits (docs/api.md) and MTN's sandbox numbers "
            "46733123450-46733123463 (docs/providers/mtn.md)",
        }

    def handle(self, request: SandboxRequest, subpath: str) -> SandboxResponse:
        try:
            return dispatch_table(
                request,
                subpath,
                self.endpoints,
                not_found=lambda: json_response(404, {"statusCode": 404, "message": "Resource not found"}),
                method_not_allowed=lambda: json_response(405, {"statusCode": 405, "message": "Method not allowed"}),
            )
        except MtnError as exc:
            return json_response(exc.status, exc.body)

    # --- tokens ------------------------------------------------------------------------------------------

    def token(self, request: SandboxRequest, found: re.Match[str]) -> SandboxResponse:
        product = found["product"]
        self._check_subscription_key(request, product)
        if request.body.strip():
            raise bad_request("The token request takes no body.")
        user, key = basic_credentials(request.header("authorization"))
        expected_user, expected_key = self.users[product]
        matches = [
            hmac.compare_digest(user.encode(), expected_user.encode()),
            hmac.compare_digest(key.encode(), expected_key.encode()),
        ]
        if not all(matches):
            logger.info("MTN sandbox refused a %s token request (wrong API user or key)", product)
            raise MtnError(500, LOGIN_FAILED)
        token = secrets.token_urlsafe(32)
        lifetime = self.context.token_lifetime
        self.store.add_token(
            token,
            IssuedToken(
                provider=f"{PROVIDER}:{product}",
                expires_mono=time.monotonic() + lifetime,
                expires_at=utc_now() + timedelta(seconds=lifetime),
            ),
        )
        return json_response(200, {"access_token": token, "token_type": "access_token", "expires_in": lifetime})

    def _check_subscription_key(self, request: SandboxRequest, product: str) -> None:
        given = request.header("ocp-apim-subscription-key")
        if not hmac.compare_digest(given.encode(), self.subscription_keys[product].encode()):
            raise MtnError(401, INVALID_SUBSCRIPTION_KEY)

    def _authorize(self, request: SandboxRequest, product: str) -> str:
        """The product's key, a Bearer token of that product, a target environment: the environment."""
        self._check_subscription_key(request, product)
        scheme, _, token = request.header("authorization").partition(" ")
        if scheme.lower() != "bearer" or not self.store.token_valid(f"{PROVIDER}:{product}", token.strip()):
            raise MtnError(401, INVALID_TOKEN)
        environment = request.header("x-target-environment").strip()
        if not environment:
            raise bad_request("X-Target-Environment is required.")
        if environment not in ENVIRONMENT_CURRENCIES:
            raise MtnError(500, FORBIDDEN_ENVIRONMENT)
        return environment

    # --- money-moving POSTs ----------------------------------------------------------------------------------

    def _reference_id(self, request: SandboxRequest) -> str:
        reference = request.header("x-reference-id").strip()
        if not UUID4_RE.fullmatch(reference.lower()):
            raise bad_request("X-Reference-Id must be a UUID version 4.")
        reference = reference.lower()
        if self.store.get_charge(PROVIDER, reference) is not None:
            raise MtnError(409, DUPLICATE)
        return reference

    def _callback_url(self, request: SandboxRequest) -> str:
        if "x-callback-url" not in request.headers:
            return ""
        url = request.headers["x-callback-url"].strip()
        parts = urlsplit(url)
        if not url or parts.scheme not in ("http", "https") or not parts.netloc or "///" in url:
            raise bad_request("X-Callback-Url is not a valid URL.")
        return url

    def request_to_pay(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        return self._move_money(
            request, product=COLLECTION, kind=REQUEST_TO_PAY, party="payer", official=OFFICIAL_PAYER
        )

    def transfer(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        return self._move_money(request, product=DISBURSEMENT, kind=TRANSFER, party="payee", official=OFFICIAL_PAYEE)

    def _move_money(
        self, request: SandboxRequest, *, product: str, kind: str, party: str, official: dict[str, str]
    ) -> SandboxResponse:
        """A request to pay (the payer is prompted) or a transfer (the payee is paid): the same checks and record."""
        environment = self._authorize(request, product)
        with self.store.lock:
            reference = self._reference_id(request)
            callback_url = self._callback_url(request)
            data = checked_body(request, environment, party=party)
            msisdn = data[party]["partyId"]
            self._new_charge(
                kind=kind,
                reference=reference,
                data=data,
                msisdn=msisdn,
                party=party,
                callback_url=callback_url,
                environment=environment,
                script=script_for(msisdn, official),
            )
        return SandboxResponse(202)

    def refund(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        environment = self._authorize(request, DISBURSEMENT)
        with self.store.lock:
            reference = self._reference_id(request)
            callback_url = self._callback_url(request)
            data = checked_body(request, environment, party=None)
            original_id = data.get("referenceIdToRefund")
            if not isinstance(original_id, str) or not UUID4_RE.fullmatch(original_id.lower()):
                raise bad_request("referenceIdToRefund must be the X-Reference-Id of a request to pay.")
            original = self.store.get_charge(PROVIDER, original_id.lower())
            amount = positive(data["amount"]) or Decimal(0)
            if original is None or original.extra.get("kind") != REQUEST_TO_PAY:
                script, msisdn = failing("RESOURCE_NOT_FOUND", "refund of an unknown request to pay"), ""
            elif original.state() != Result.SUCCESS.value or original.currency != data["currency"]:
                script, msisdn = failing("NOT_ALLOWED", "refund of a request to pay that was not paid"), original.msisdn
            elif amount > self._refundable(original):
                script, msisdn = failing("NOT_ALLOWED", "refund of more than is left to refund"), original.msisdn
            else:
                msisdn = original.msisdn
                script = script_for(msisdn, OFFICIAL_PAYEE)  # the money goes back to the payer, as a transfer
            self._new_charge(
                kind=REFUND,
                reference=reference,
                data=data,
                msisdn=msisdn,
                party="payee",
                callback_url=callback_url,
                environment=environment,
                script=script,
                refund_of=original_id.lower(),
            )
        return SandboxResponse(202)

    def _refundable(self, original: Charge) -> Decimal:
        """The payment's amount less every refund of it that has not failed (pending ones count)."""
        taken = sum(
            (
                positive(c.amount) or Decimal(0)
                for c in self.store.find_charges(provider=PROVIDER)
                if c.extra.get("refund_of") == original.transaction_id and c.state() in (PENDING, Result.SUCCESS.value)
            ),
            Decimal(0),
        )
        return (positive(original.amount) or Decimal(0)) - taken

    def _new_charge(
        self,
        *,
        kind: str,
        reference: str,
        data: dict[str, Any],
        msisdn: str,
        party: str,
        callback_url: str,
        environment: str,
        script: Script,
        refund_of: str = "",
    ) -> Charge:
        outcome = script.outcome
        charge = Charge(
            provider=PROVIDER,
            transaction_id=reference,
            external_id=data.get("externalId", ""),
            msisdn=msisdn,
            amount=data["amount"],
            currency=data["currency"],
            channel=kind,
            outcome=outcome,
            extra={
                "kind": kind,
                "party": party,
                "callback_url": callback_url,
                "target_environment": environment,
                "payerMessage": data.get("payerMessage", ""),
                "payeeNote": data.get("payeeNote", ""),
                "financialTransactionId": bodies.new_financial_transaction_id(),
                "reason": script.reason or bodies.RESULT_REASONS.get(outcome.result, ""),
                "queries": 0,
                "_script": script,
            },
        )
        if refund_of:
            charge.extra["refund_of"] = refund_of
        charge.decide_at = (
            math.inf
            if math.isinf(outcome.decide_after)
            else charge.created_mono + self.dispatcher.scaled(outcome.decide_after)
        )
        charge.extra["_visible_at"] = charge.created_mono + self.dispatcher.scaled(EARLY_404_SECONDS)
        self.store.add_charge(charge)
        if callback_url:  # MTN calls back only when told where
            for scripted in outcome.callbacks:
                self.dispatcher.call_later(scripted.after, partial(self._deliver, charge, scripted))
        logger.info(
            "MTN sandbox %s %s for %s (%s): outcome %s",
            kind,
            reference,
            mask_msisdn(msisdn),
            charge.external_id,
            outcome.name,
        )
        return charge

    # --- the status GETs -----------------------------------------------------------------------------------

    def status(self, kind: str, request: SandboxRequest, found: re.Match[str]) -> SandboxResponse:
        self._authorize(request, COLLECTION if kind == REQUEST_TO_PAY else DISBURSEMENT)
        charge = self.store.get_charge(PROVIDER, found["ref"].lower())
        if charge is None or charge.extra.get("kind") != kind:
            raise MtnError(404, NOT_FOUND)
        with self.store.lock:
            charge.extra["queries"] += 1
        if time.monotonic() < charge.extra["_visible_at"]:
            raise MtnError(404, NOT_FOUND)  # just accepted: not visible yet
        return json_response(200, self.status_body(charge))

    def status_body(self, charge: Charge, result: Result | None = None) -> dict[str, Any]:
        """The status object: the GET's answer, and (with the result a callback announces) the callback body."""
        script: Script = charge.extra["_script"]
        if result is None:
            state = charge.state()
            result = None if state == PENDING else Result(state)
        if result is None:
            status, reason = script.before, ""
        elif result == Result.SUCCESS:
            status, reason = "SUCCESSFUL", ""
        else:
            status, reason = "FAILED", script.reason_for(result)
        return bodies.status_object(
            external_id=charge.external_id,
            amount=charge.amount,
            currency=charge.currency,
            msisdn=charge.msisdn,
            status=status,
            party=charge.extra["party"],
            payer_message=charge.extra["payerMessage"],
            payee_note=charge.extra["payeeNote"],
            financial_transaction_id=charge.extra["financialTransactionId"],
            reason=reason,
        )

    # --- callbacks -------------------------------------------------------------------------------------------

    def _deliver(self, charge: Charge, scripted: ScriptedCallback) -> None:
        body = json.dumps(self.status_body(charge, scripted.result)).encode()
        url = charge.extra["callback_url"]
        label = scripted.result.value
        if scripted.copies > 1:
            self.dispatcher.post_burst(charge, url, body, label=label, copies=scripted.copies, method="PUT")
        else:
            self.dispatcher.post(charge, url, body, label=label, method="PUT")
