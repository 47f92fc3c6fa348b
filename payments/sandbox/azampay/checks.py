"""AzamPay's fixed values, its refusals (ASP.NET ProblemDetails for validation errors) and the checks of request
fields, shared by the simulator's API half (simulator.py) and its hosted checkout (hosted.py)."""

import re
import secrets
from typing import Any

from payments.providers.azampay.config import SANDBOX_CALLBACK_PASSWORD
from payments.sandbox.protocol import BadRequestBody, SandboxRequest, SandboxResponse, json_response

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

# Numeric provider codes from docs/providers/azampay.md (airtel=2, tigo=3, halopesa=4, azampesa=5, Mpesa=10).
PARTNER_CODES = {"Airtel": 2, "Tigo": 3, "Halopesa": 4, "Azampesa": 5, "Mpesa": 10}
MSISDN_RE = re.compile(r"255\d{9}")
WHOLE_AMOUNT_RE = re.compile(r"[1-9]\d{0,11}")


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


def json_object(request: SandboxRequest) -> dict[str, Any]:
    try:
        data = request.json()
    except BadRequestBody as exc:
        raise Problem({"$": [str(exc)]}) from exc
    if not isinstance(data, dict):
        raise Problem({"$": ["The request body must be a JSON object."]})
    return data


def amount_field(data: dict[str, Any], key: str, errors: dict[str, list[str]]) -> str:
    value = data.get(key)
    # Integers are accepted too (docs/providers/azampay.md); the string form is what gets echoed back.
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if isinstance(value, str) and WHOLE_AMOUNT_RE.fullmatch(value):
        return value
    errors[key] = [f'{key} must be a whole, positive number of shillings as a string, e.g. "1000".']
    return ""


def msisdn_field(data: dict[str, Any], key: str, errors: dict[str, list[str]]) -> str:
    value = data.get(key)
    if isinstance(value, str) and MSISDN_RE.fullmatch(value):
        return value
    errors[key] = [f"{key} must be 255 followed by 9 digits, without + (e.g. 255712345678)."]
    return ""


def external_id_field(data: dict[str, Any], key: str, limit: int, errors: dict[str, list[str]]) -> str:
    value = data.get(key)
    if isinstance(value, str) and value.strip() and len(value) <= limit and value.isascii():
        return value
    errors[key] = [f"{key} is required: at most {limit} ASCII characters."]
    return ""
