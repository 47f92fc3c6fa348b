"""Airtel's collection callback: one URL per app (set on Airtel's portal), our id in `transaction.id`, the state
in `status_code` (or `status` in the legacy shape), no amount and no currency. Optionally a top-level `hash`
(portal setting "callback authentication"), whose exact input is unconfirmed (docs/providers/airtel.md,
"Authenticating it"): it is checked when AIRTEL_CALLBACK_SECRET is set, and a callback is never believed on
its word anyway: the transaction enquiry confirms it before anything is credited.

Shapes accepted:
- `{"transaction": {"id", "message", "status_code", "airtel_money_id"}, "hash"?}` (Airtel's);
- `{"data": {"transaction": {…}}}` and `{"transaction": {…}, "data": {"transaction": {…}}}` (legacy: ours)."""

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from typing import Any

from payments.providers.airtel.codes import SECRET_FIELDS, SUCCESS, status_for_state
from payments.providers.base import (
    CallbackMalformed,
    CallbackTrust,
    PaymentStatus,
    ProviderResult,
    RawCallback,
    UrlToken,
    load_json_object,
)

logger = logging.getLogger("payments.airtel")


def callback_hash(secret: str, transaction: Mapping[str, Any]) -> str:
    """The `hash` we expect: Base64(HMAC-SHA256(secret, compact JSON of the `transaction` object)).

    Airtel documents "hashing the callback payload with the private key configured in the application settings
    using HmacSHA256, then comparing the Base64-encoded result"; this input (compact JSON of `transaction`, keys
    in the order received) is airtelmoney-py's reading. The one place to change when Airtel confirms another."""
    message = json.dumps(transaction, separators=(",", ":")).encode("utf-8")
    return base64.b64encode(hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()).decode("ascii")


def authenticate(secret: str, callback: RawCallback) -> CallbackTrust:
    """REJECTED when a configured secret does not reproduce the body's `hash` (or there is none); otherwise
    UNVERIFIED: even a matching hash only proves the sender knew the secret, and its input is unconfirmed."""
    if callback.url_token == UrlToken.INVALID:
        return CallbackTrust.REJECTED
    if not secret:
        return CallbackTrust.UNVERIFIED
    try:
        data = load_json_object(callback.body)
    except CallbackMalformed:
        return CallbackTrust.UNVERIFIED  # parsing refuses it with a precise 400
    given = data.get("hash")
    signed = _signed_transaction(data)
    if not isinstance(given, str) or not given or signed is None:
        logger.warning("Airtel Money %s callback without a hash while AIRTEL_CALLBACK_SECRET is set", callback.kind)
        return CallbackTrust.REJECTED
    if not hmac.compare_digest(given.strip().encode(), callback_hash(secret, signed).encode()):
        logger.warning("Airtel Money %s callback hash did not match (transaction %s)", callback.kind, signed.get("id"))
        return CallbackTrust.REJECTED
    return CallbackTrust.UNVERIFIED


def parse_payment(body: bytes) -> ProviderResult:
    transaction = callback_transaction(load_json_object(body))
    our_reference = field(transaction, "id", required=True)
    state = field(transaction, "status_code") or field(transaction, "status")
    if not state:
        raise CallbackMalformed("transaction.status_code (or transaction.status) is required")
    message = field(transaction, "message")
    status, reason = status_for_state(state, "", message)
    airtel_money_id = field(transaction, "airtel_money_id")
    return ProviderResult(
        status=status,
        provider_reference=airtel_money_id,
        our_reference=our_reference,
        receipt=airtel_money_id if status == PaymentStatus.SUCCEEDED else "",
        message=f"{reason} (Airtel {state.upper()})" if state.upper() != SUCCESS else reason,
    )


def callback_transaction(data: Mapping[str, Any]) -> dict[str, Any]:
    """The transaction object of either shape; the top-level one wins where both have a field."""
    top = data.get("transaction")
    outer = data.get("data")
    nested = outer.get("transaction") if isinstance(outer, Mapping) else None
    if not isinstance(top, Mapping) and not isinstance(nested, Mapping):
        raise CallbackMalformed('expected {"transaction": {...}} (or {"data": {"transaction": {...}}})')
    merged: dict[str, Any] = dict(nested) if isinstance(nested, Mapping) else {}
    merged.update(top if isinstance(top, Mapping) else {})
    return merged


def field(transaction: Mapping[str, Any], key: str, *, required: bool = False) -> str:
    """A string field that some integrations send as a number (Moodle's ids are integers)."""
    value = transaction.get(key)
    if value is None or value == "":
        if required:
            raise CallbackMalformed(f"transaction.{key} is required")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise CallbackMalformed(f"transaction.{key} must be a string")
    text = str(value).strip()
    if required and not text:
        raise CallbackMalformed(f"transaction.{key} must not be empty")
    return text


def redact(body: bytes) -> str:
    """The body without its `hash` (it is keyed with our secret); untouched when it has none."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return body.decode("utf-8", errors="replace")
    if not isinstance(data, dict) or not any(key in data for key in SECRET_FIELDS):
        return body.decode("utf-8", errors="replace")
    for key in SECRET_FIELDS:
        data.pop(key, None)
    return json.dumps(data, ensure_ascii=False)


def _signed_transaction(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    top = data.get("transaction")
    if isinstance(top, Mapping):
        return top
    outer = data.get("data")
    nested = outer.get("transaction") if isinstance(outer, Mapping) else None
    return nested if isinstance(nested, Mapping) else None
