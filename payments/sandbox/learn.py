"""`POST /_sandbox/learn`: tell the sandbox about a payment it never saw, already paid.

The fault suite and the bench seed pending payments straight into the database and send the providers'
callbacks themselves; the site then confirms each callback with the provider's status query. Rather than keep
a second fake provider for those queries, the real simulators learn the seeded payments here and answer their
status queries (AzamPay status, Daraja STK Push Query, MTN's request-to-pay GET, Airtel's enquiry) like for any
charge of their own: paid, with the learnt amount and references. Learnt charges schedule no callback.
"""

import secrets
import time
import uuid
from typing import Any

from payments.sandbox.daraja import bodies as daraja
from payments.sandbox.mtn import bodies as mtn
from payments.sandbox.mtn.scripts import Script
from payments.sandbox.outcomes import SUCCESS
from payments.sandbox.protocol import BadRequestBody
from payments.sandbox.store import Charge

FIELDS = ("provider", "transaction_id", "external_id", "amount", "currency")


def _extra(provider: str, data: dict[str, Any]) -> dict[str, Any]:
    """What each simulator's status query reads of a charge it made itself."""
    if provider == "azampay":
        return {"kind": "mno", "mnoreference": str(data.get("mnoreference") or uuid.uuid4())}
    if provider == "mpesa":
        return {
            "merchant_request_id": daraja.new_conversation_id(),
            "callback_url": "",
            "receipt": str(data.get("receipt") or daraja.new_receipt()),
            "queries": 0,
        }
    if provider == "mtn":
        return {
            "kind": "requesttopay",
            "party": "payer",
            "callback_url": "",
            "payerMessage": str(data.get("payer_message", "")),
            "payeeNote": str(data.get("payee_note", "")),
            "financialTransactionId": str(data.get("financial_transaction_id") or mtn.new_financial_transaction_id()),
            "reason": "",
            "queries": 0,
            "_script": Script(SUCCESS),
            "_visible_at": 0.0,
        }
    if provider == "airtel":
        return {"kind": "collection", "callback_url": "", "queries": 0}
    raise BadRequestBody(f"The sandbox cannot learn {provider!r} payments (azampay, mpesa, mtn, airtel).")


def learned_charges(payload: Any) -> list[Charge]:
    """`{"charges": [{provider, transaction_id, external_id, amount, currency, msisdn?, ...}]}` → paid charges.

    transaction_id is the provider's id (AzamPay's transaction id, Daraja's CheckoutRequestID, our MTN
    X-Reference-Id, Airtel's airtel_money_id); external_id ours (MTN: externalId; Airtel: transaction.id)."""
    items = payload.get("charges") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise BadRequestBody('The body must be {"charges": [...]}.')
    charges = []
    for item in items:
        if not isinstance(item, dict) or not all(isinstance(item.get(name), str) for name in FIELDS):
            raise BadRequestBody(f"Every charge needs the strings {', '.join(FIELDS)}.")
        provider = item["provider"]
        transaction_id = item["transaction_id"].lower() if provider == "mtn" else item["transaction_id"]
        charge = Charge(
            provider=provider,
            transaction_id=transaction_id or secrets.token_hex(8),
            external_id=item["external_id"],
            msisdn=str(item.get("msisdn", "")),
            amount=item["amount"],
            currency=item["currency"],
            channel=str(item.get("channel", "learnt")),
            outcome=SUCCESS,
            extra=_extra(provider, item),
        )
        charge.decide_at = time.monotonic()  # already paid
        charges.append(charge)
    return charges
