"""Airtel Money's callback bodies, their `hash`, and the enquiry envelopes: pure functions of values (no HTTP,
no ORM), shared by the simulator, `manage.py simulate_callback`, the fault harness and the tests.

The collection callback comes in two shapes (docs/providers/airtel.md): Airtel's `{"transaction": {...,
"status_code"}}` and the legacy one that repeats it under `data.transaction` with `status`; either may carry a
top-level `hash`, Base64(HMAC-SHA256(secret, compact JSON of `transaction`)). Written apart from the adapter's
check on purpose: the simulator plays Airtel and shares no code with its client.
"""

import base64
import hashlib
import hmac
import json
import random
import string
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from payments.sandbox.outcomes import Result

KAMPALA = ZoneInfo("Africa/Kampala")

# Result → (transaction state, response code, message) of a collection.
COLLECTION_RESULTS: dict[str, tuple[str, str, str]] = {
    Result.SUCCESS: ("TS", "DP00800001001", "success"),
    Result.INSUFFICIENT_FUNDS: ("TF", "DP00800001007", "Not enough balance"),
    Result.CANCELLED: ("TF", "DP00800001008", "The payer cancelled the transaction."),
    Result.TIMEOUT: ("TF", "DP00800001024", "Transaction Timed Out"),
    Result.DECLINED: ("TF", "DP00800001009", "Do not honor"),
    Result.FAILED: ("TF", "DP00800001009", "Transaction failed"),
}
ENQUIRY_NOT_FOUND = {
    "status": {
        "code": "404",
        "message": "No Transaction Found With Provided Transaction Id.",
        "result_code": "ESB000045",
        "success": False,
    }
}


def callback_hash(secret: str, transaction: dict[str, Any]) -> str:
    """Base64(HMAC-SHA256(secret, compact JSON of `transaction`))."""
    signed = json.dumps(transaction, separators=(",", ":")).encode()
    return base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()


def new_money_id(prefix: str = "MP", rng: random.Random | None = None, moment: datetime | None = None) -> str:
    """An airtel_money_id in the shape of the docs' samples: MP210603.1234.L06941."""
    now = moment or datetime.now(KAMPALA)
    pick = rng or random
    return f"{prefix}{now:%y%m%d}.{now:%H%M}.{pick.choice(string.ascii_uppercase)}{pick.randrange(10**5):05d}"


def paid_message(currency: str, amount: str | int | Decimal, money_id: str) -> str:
    """The message of a successful collection callback."""
    return f"Paid {currency} {int(Decimal(amount)):,} to DONATION PORTAL Charge {currency} 0, Trans ID {money_id}."


def collection_callback(
    *,
    transaction_id: str,
    money_id: str,
    result: Result,
    message: str = "",
    currency: str = "",
    amount: str | int | Decimal = 0,
    secret: str | None = None,
    legacy: bool = False,
) -> dict[str, Any]:
    """A collection callback for our `transaction_id` (Airtel's `transaction.id`). `message` "": the default of the
    result (a success names `currency` and `amount`). `secret`: the key of the top-level `hash` (None: no hash)."""
    state, _, default = COLLECTION_RESULTS[result]
    if not message:
        message = paid_message(currency, amount, money_id) if result == Result.SUCCESS else default
    if legacy:
        transaction = {"id": transaction_id, "status": state, "message": message}
        body: dict[str, Any] = {"transaction": transaction, "data": {"transaction": {**transaction,
                                "airtel_money_id": money_id}}}  # fmt: skip
    else:
        transaction = {"id": transaction_id, "message": message, "status_code": state, "airtel_money_id": money_id}
        body = {"transaction": transaction}
    if secret is not None:
        body["hash"] = callback_hash(secret, transaction)
    return body


def enquiry_answer(
    *, transaction_id: str, state: str, message: str, response_code: str, money_id: str = "", success: bool = False
) -> dict[str, Any]:
    """The transaction enquiry's envelope. Airtel's own example of a TS has `status.success` false (clients must
    read data.transaction.status); `success` lets a caller send either."""
    transaction: dict[str, Any] = {"id": transaction_id, "status": state, "message": message}
    if money_id:
        transaction["airtel_money_id"] = money_id
    status = {"code": "200", "message": "SUCCESS", "result_code": "ESB000010", "response_code": response_code}
    return {"data": {"transaction": transaction}, "status": {**status, "success": success}}


def paid_enquiry(transaction_id: str, money_id: str) -> dict[str, Any]:
    """The enquiry of a paid collection (the fixture enquiry_success.json's shape)."""
    state, code, message = COLLECTION_RESULTS[Result.SUCCESS]
    return enquiry_answer(
        transaction_id=transaction_id, state=state, message=message, response_code=code, money_id=money_id, success=True
    )


def disbursement_result(
    *, transaction_id: str, money_id: str, reference_id: str, state: str, message: str, response_code: str
) -> dict[str, Any]:
    """A disbursement's answer (Airtel answers synchronously), also the body of its result callback."""
    transaction = {"reference_id": reference_id, "airtel_money_id": money_id, "id": transaction_id, "status": state}
    status = {"code": "200", "message": message, "result_code": "ESB000010", "response_code": response_code}
    return {"data": {"transaction": transaction}, "status": {**status, "success": state == "TS"}}
