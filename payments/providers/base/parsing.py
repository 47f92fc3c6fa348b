"""Reading provider bodies safely: JSON that cannot crash the worker, money as Decimal.

Every adapter's parser goes through these, so a hostile or garbled body is a `CallbackMalformed` (a 400,
kept in the inbox), never an exception that would be retried forever.
"""

import json
from decimal import Decimal, InvalidOperation

from payments.providers.base.errors import CallbackMalformed


def load_json(body: bytes) -> object:
    """The JSON value of a callback body, or CallbackMalformed: not JSON, not UTF-8, or nested so deeply
    that the parser gives up (RecursionError is not a ValueError, and must not escape as a crash that would
    be retried forever)."""
    try:
        return json.loads(body)
    except RecursionError as exc:
        raise CallbackMalformed("the body is nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise CallbackMalformed("the body is not JSON") from exc


def load_json_object(body: bytes) -> dict:
    data = load_json(body)
    if not isinstance(data, dict):
        raise CallbackMalformed("the body must be a JSON object")
    return data


def parse_money(value: object) -> Decimal | None:
    """A provider's amount ("1,000.00", 1000, "60000") as Decimal; None when absent; CallbackMalformed if nonsense."""
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value).replace(",", "").strip())
    except InvalidOperation as exc:
        raise CallbackMalformed(f"amount {value!r} is not a number") from exc
    if not amount.is_finite():
        raise CallbackMalformed(f"amount {value!r} is not a number")
    return amount
