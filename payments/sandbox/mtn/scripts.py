"""What MTN's sandbox says about a transaction: its documented test numbers (docs/providers/mtn.md, "Sandbox test
numbers") and the two-digit table of every simulator, as a Script; MTN's refusals and the checks of a body.
Apart from simulator.py so the request handling reads on its own.
"""

import base64
import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from payments.providers.mtn.codes import MARKET_CURRENCIES
from payments.sandbox.mtn.bodies import RESULT_REASONS
from payments.sandbox.outcomes import DECISION_SECONDS, Outcome, Result, ScriptedCallback, outcome_for_phone
from payments.sandbox.protocol import BadRequestBody, SandboxRequest

MAX_TEXT = 160
FORBIDDEN_TEXT = ("&", "'")
PARTY_ID_TYPES = ("MSISDN", "EMAIL", "PARTY_CODE")
# X-Target-Environment → the currency it takes (MTN's sandbox: EUR only): the same table the provider checks
# MTN_CURRENCY against, so the simulator and the deploy check cannot disagree.
ENVIRONMENT_CURRENCIES = MARKET_CURRENCIES
DELAYED_SECONDS = 25.0  # 46733123454: CREATED, then SUCCESSFUL after about 25 s (observed live)
INVALID_SUBSCRIPTION_KEY = {
    "statusCode": 401,
    "message": "Access denied due to invalid subscription key. Make sure to provide a valid key for an active "
    "subscription.",
}
INVALID_TOKEN = {"statusCode": 401, "message": "Access denied due to an invalid or expired access token."}
LOGIN_FAILED = {"error": "login_failed"}
NOT_FOUND = {"code": "RESOURCE_NOT_FOUND", "message": "Requested resource was not found."}
DUPLICATE = {"code": "RESOURCE_ALREADY_EXIST", "message": "Duplicated reference id. Creation of resource failed."}
INVALID_CURRENCY = {"code": "INVALID_CURRENCY", "message": "Currency not supported."}
FORBIDDEN_ENVIRONMENT = {
    "code": "NOT_ALLOWED_TARGET_ENVIRONMENT",
    "message": "Access to target environment is forbidden.",
}

ONGOING = "ONGOING"  # stays PENDING
DELAYED = "DELAYED"  # CREATED, then SUCCESSFUL after about 25 s
# docs/providers/mtn.md, "Sandbox test numbers": RequestToPay (payer) and transfer (payee); any other number
# follows the two-digit table.
OFFICIAL_PAYER = {
    "46733123450": "INTERNAL_PROCESSING_ERROR",
    "46733123451": "APPROVAL_REJECTED",
    "46733123452": "EXPIRED",
    "46733123453": ONGOING,
    "46733123454": DELAYED,
    "46733123455": "PAYER_NOT_FOUND",
    "46733123456": "PAYEE_NOT_ALLOWED_TO_RECEIVE",
    "46733123457": "NOT_ALLOWED",
    "46733123458": "NOT_ALLOWED_TARGET_ENVIRONMENT",
    "46733123459": "INVALID_CALLBACK_URL_HOST",
    "46733123460": "INVALID_CURRENCY",
    "46733123461": "INTERNAL_PROCESSING_ERROR",
    "46733123462": "SERVICE_UNAVAILABLE",
    "46733123463": "COULD_NOT_PERFORM_TRANSACTION",
}
OFFICIAL_PAYEE = {
    "46733123450": "INTERNAL_PROCESSING_ERROR",
    "46733123451": "APPROVAL_REJECTED",
    "46733123452": "EXPIRED",
    "46733123453": ONGOING,
    "46733123454": DELAYED,
    "46733123455": "NOT_ENOUGH_FUNDS",
    "46733123456": "PAYER_LIMIT_REACHED",
    "46733123457": "PAYEE_NOT_FOUND",
    "46733123458": "NOT_ALLOWED",
    "46733123459": "NOT_ALLOWED_TARGET_ENVIRONMENT",
    "46733123460": "INVALID_CALLBACK_URL_HOST",
    "46733123461": "INVALID_CURRENCY",
    "46733123462": "INTERNAL_PROCESSING_ERROR",
    "46733123463": "SERVICE_UNAVAILABLE",
}


@dataclass(frozen=True)
class Script:
    """What MTN will say about one transaction: the neutral outcome, plus MTN's own words where they differ."""

    outcome: Outcome
    reason: str = ""  # the reason of the outcome's failure ("" = RESULT_REASONS of its Result)
    before: str = "PENDING"  # the status word before the decision

    def reason_for(self, result: Result) -> str:
        if self.reason and result == self.outcome.result:
            return self.reason
        return RESULT_REASONS.get(result, "INTERNAL_PROCESSING_ERROR")


def failing(reason: str, description: str) -> Script:
    """Failed at once (the GET says FAILED as soon as the transaction is visible); the callback a second later."""
    outcome = Outcome(
        f"mtn_{reason.lower()}", Result.FAILED, 0.0, (ScriptedCallback(DECISION_SECONDS, Result.FAILED),), description
    )
    return Script(outcome, reason=reason)


def script_for(msisdn: str, official: dict[str, str]) -> Script:
    """MTN's sandbox numbers first, then the two-digit table of every simulator."""
    code = official.get(msisdn)
    if code == ONGOING:
        return Script(Outcome("mtn_ongoing", Result.TIMEOUT, math.inf, (), "MTN sandbox number: stays PENDING"))
    if code == DELAYED:
        return Script(
            Outcome(
                "mtn_delayed",
                Result.SUCCESS,
                DELAYED_SECONDS,
                (ScriptedCallback(DELAYED_SECONDS, Result.SUCCESS),),
                "MTN sandbox number: CREATED, then SUCCESSFUL after about 25 s",
            ),
            before="CREATED",
        )
    if code:
        return failing(code, f"MTN sandbox number: FAILED {code}")
    return Script(outcome_for_phone(msisdn))


class MtnError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body


def bad_request(message: str) -> MtnError:
    return MtnError(400, {"message": message})


def basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        user, _, key = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return "", ""
    return user, key


def positive(value: str) -> Decimal | None:
    try:
        amount = Decimal(value.strip())
    except (InvalidOperation, AttributeError):
        return None
    return amount if amount.is_finite() and amount > 0 else None


def checked_body(request: SandboxRequest, environment: str, *, party: str | None) -> dict[str, Any]:
    """The checks every money-moving body meets: amount, currency, texts, the party (payer or payee)."""
    try:
        data = request.json()
    except BadRequestBody as exc:
        raise bad_request(str(exc)) from exc
    if not isinstance(data, dict):
        raise bad_request("The body must be a JSON object.")
    amount = data.get("amount")
    if not isinstance(amount, str) or positive(amount) is None:
        raise bad_request("amount must be a positive number, as a string.")
    if data.get("currency") != ENVIRONMENT_CURRENCIES[environment]:
        raise MtnError(500, INVALID_CURRENCY)
    external_id = data.get("externalId", "")
    if not isinstance(external_id, str):
        raise bad_request("externalId must be a string.")
    for key in ("payerMessage", "payeeNote"):
        text = data.get(key, "")
        if not isinstance(text, str) or len(text) > MAX_TEXT or any(c in text for c in FORBIDDEN_TEXT):
            raise bad_request(f"{key} must be at most {MAX_TEXT} characters, without & or '.")
        if not text.strip() and environment != "sandbox":
            raise MtnError(500, {"code": "INTERNAL_PROCESSING_ERROR", "message": f"{key} must not be empty."})
    if party is not None:
        found = data.get(party)
        if not isinstance(found, dict) or found.get("partyIdType") not in PARTY_ID_TYPES:
            raise bad_request(f"{party}.partyIdType must be one of {', '.join(PARTY_ID_TYPES)}.")
        party_id = found.get("partyId")
        if not isinstance(party_id, str) or not party_id.strip():
            raise bad_request(f"{party}.partyId is required.")
        if found["partyIdType"] == "MSISDN" and not party_id.isdigit():
            raise bad_request(f"{party}.partyId must be an MSISDN: digits with the country code, no +.")
    return data
