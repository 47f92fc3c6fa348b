"""MTN's status object: the answer of every status GET (request to pay, transfer, refund) and — "similar to the
response of the status check" — the body of every callback.

Every field is optional; ids come as strings or (in MTN's own examples) numbers; `reason` is a string in
production and an object `{"code", "message"}` in the Swagger and several SDKs; `financialTransactionId` is
absent unless SUCCESSFUL; v1 callbacks carry no `referenceId`.
"""

from dataclasses import dataclass
from decimal import Decimal

from payments.providers.base import CallbackMalformed, PaymentStatus, load_json_object, parse_money
from payments.providers.mtn.codes import status_for


@dataclass(frozen=True)
class MtnStatus:
    status: str  # MTN's word, upper case ("" when absent)
    reason: str = ""  # the reason code on FAILED ("" when none)
    reason_message: str = ""  # MTN's own text when the reason came as an object
    reference_id: str = ""  # the X-Reference-Id (only some callbacks and v2 operations carry it)
    external_id: str = ""  # ours
    amount: Decimal | None = None
    currency: str = ""
    financial_transaction_id: str = ""  # MTN's receipt
    party_id: str = ""  # the payer's (collections) or payee's (transfers, refunds) MSISDN

    def outcome(self) -> tuple[PaymentStatus, str]:
        return status_for(self.status, self.reason)


def read_status(data: dict) -> MtnStatus:
    """The status object as our values; CallbackMalformed names the field that cannot be read."""
    status = data.get("status")
    if not isinstance(status, str) or not status.strip():
        raise CallbackMalformed("status is required: SUCCESSFUL, FAILED, PENDING, …")
    reason, reason_message = _reason(data.get("reason"))
    party = data.get("payer") if isinstance(data.get("payer"), dict) else data.get("payee")
    return MtnStatus(
        status=status.strip().upper(),
        reason=reason,
        reason_message=reason_message,
        reference_id=_text(data, "referenceId"),
        external_id=_text(data, "externalId"),
        amount=parse_money(_text(data, "amount") or None),
        currency=_text(data, "currency").upper(),
        financial_transaction_id=_text(data, "financialTransactionId"),
        party_id=_text(party, "partyId") if isinstance(party, dict) else "",
    )


def read_status_body(body: bytes) -> MtnStatus:
    return read_status(load_json_object(body))


def _text(data: dict, key: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise CallbackMalformed(f"{key} must be a string")
    return str(value).strip()


def _reason(value: object) -> tuple[str, str]:
    """(code, MTN's message) from a string reason or an object one."""
    if value is None or value == "":
        return "", ""
    if isinstance(value, str):
        return value.strip().upper(), ""
    if isinstance(value, dict):
        code = value.get("code")
        message = value.get("message")
        return (
            str(code).strip().upper() if isinstance(code, str | int) and not isinstance(code, bool) else "",
            message.strip() if isinstance(message, str) else "",
        )
    raise CallbackMalformed("reason must be a string or an object with a code")
