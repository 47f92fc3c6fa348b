"""Daraja's refusals: the `{requestId, errorCode, errorMessage}` envelope and the checks of request fields.

Shared by the STK and the money-out halves of the simulator (simulator.py, money.py).
"""

import re
import secrets
from typing import Any

from payments.sandbox.protocol import BadRequestBody, SandboxRequest, SandboxResponse, json_response

MAX_AMOUNT = 250_000
MSISDN_RE = re.compile(r"254[17]\d{8}")


class DarajaError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def bad(field: str) -> DarajaError:
    return DarajaError(400, "400.002.02", f"Bad Request - Invalid {field}")


def error_envelope(status: int, code: str, message: str) -> SandboxResponse:
    return json_response(
        status,
        {"requestId": f"{secrets.token_hex(4)}-{secrets.token_hex(12)}", "errorCode": code, "errorMessage": message},
    )


def json_object(request: SandboxRequest) -> dict[str, Any]:
    try:
        data = request.json()
    except BadRequestBody as exc:
        raise DarajaError(400, "400.002.02", f"Bad Request - {exc}") from exc
    if not isinstance(data, dict):
        raise DarajaError(400, "400.002.02", "Bad Request - the body must be a JSON object")
    return data


def whole_amount(value: Any) -> int:
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


def msisdn_field(data: dict[str, Any], key: str) -> str:
    value = str(data.get(key) or "")
    if not MSISDN_RE.fullmatch(value):
        raise DarajaError(400, "400.002.02", f"Bad Request - Invalid {key}")
    return value
