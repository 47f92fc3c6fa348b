"""Airtel's fixed values, its refusals (HTTP 200 `success: false`, gateway errors) and the checks of request
fields, shared by the collection half (simulator.py) and the money-out half (money.py) of the simulator.
"""

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from payments.sandbox.outcomes import DECISION_SECONDS, Outcome, Result
from payments.sandbox.protocol import BadRequestBody, SandboxRequest

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


def json_object(request: SandboxRequest) -> dict[str, Any]:
    try:
        data = request.json()
    except BadRequestBody as exc:
        raise gateway_error(400, "ROUTER003", f"Mandatory parameters are missing: {exc}") from exc
    if not isinstance(data, dict):
        raise gateway_error(400, "ROUTER003", "The body must be a JSON object.")
    return data


def object_field(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise refused(f"{key} is required.", result_code="ESB000008")
    return value


def alphanumeric(value: str, low: int, high: int) -> bool:
    return low <= len(value) <= high and ALPHANUMERIC_RE.fullmatch(value) is not None


def msisdn_field(value: object, country: str) -> str:
    length = COUNTRIES[country][2]
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not text.isdigit() or len(text) != length:
        # Sent with its country code, a leading 0, or of the wrong length ("Do not send the country code").
        raise refused(f"Invalid Msisdn Length. Msisdn Length should be {length}", result_code="ESB000033", code="400")
    return text


def amount_field(value: object, currency: str, invalid_code: str) -> str:
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


def transaction_id_field(value: object) -> str:
    if not isinstance(value, str) or not alphanumeric(value, MIN_ID, MAX_ID):
        raise refused(
            "transaction.id must not be null or blank and should only contain alphanumeric characters with length "
            "between 5 and 80 characters",
            result_code="ESB000008",
        )
    return value
