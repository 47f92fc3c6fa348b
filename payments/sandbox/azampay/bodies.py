"""AzamPay's callback body, its password field and signature, and the status query's answer: pure functions of
values (no HTTP, no ORM), shared by the simulator, `manage.py simulate_callback`, the fault harness and the tests.

The shape is the real sandbox's callback as integrators logged it (docs/providers/azampay.md); AzamPay has no
callback signature of its own in production, so the site authenticates a callback by the `password` field.
"""

import base64
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from payments.sandbox.outcomes import PENDING, Result

# Free text of the status query (docs/providers/azampay.md); the site maps it with its own STATUS_MAP.
STATUS_TEXT: dict[str, str] = {
    PENDING: "Transaction pending.",
    Result.SUCCESS: "Transaction successful.",
    Result.INSUFFICIENT_FUNDS: "Transaction failed: insufficient funds.",
    Result.CANCELLED: "Transaction cancelled by payer.",
    Result.TIMEOUT: "Transaction failed: timeout (no answer from payer).",
    Result.DECLINED: "Transaction failed: card declined.",
    Result.FAILED: "Transaction failed.",
}
# The callback's "message": the real success sample says "success"; failure wording is unconfirmed
# (docs/providers/azampay.md).
CALLBACK_MESSAGE: dict[Result, str] = {
    Result.SUCCESS: "success",
    Result.INSUFFICIENT_FUNDS: "Insufficient funds",
    Result.CANCELLED: "Cancelled by payer",
    Result.TIMEOUT: "No answer from payer (timeout)",
    Result.DECLINED: "Card declined",
    Result.FAILED: "Transaction failed",
}
SIGNED_FIELDS = (
    "utilityref",
    "externalreference",
    "transactionstatus",
    "operator",
)  # docs/providers/azampay.md, in order


def sign_callback(private_key: rsa.RSAPrivateKey, body: dict[str, Any]) -> str:
    """Base64 RSA PKCS#1 v1.5 / SHA-256 over utilityref+externalreference+transactionstatus+operator."""
    signed = "".join(str(body.get(name) or "") for name in SIGNED_FIELDS)
    return base64.b64encode(private_key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def build_callback(
    *,
    transaction_id: str,
    external_id: str,
    amount: str,
    msisdn: str,
    operator: str,
    mnoreference: str,
    success: bool,
    message: str,
    password: str | None,
    private_key: rsa.RSAPrivateKey | None = None,
) -> dict[str, Any]:
    """The callback body in the real-sample shape (docs/providers/azampay.md), plus the `password` field (None:
    left out) and, with a key, the RSA signature."""
    body: dict[str, Any] = {
        "message": message,
        "transactionstatus": "success" if success else "failure",
        "operator": operator,
        "reference": transaction_id,
        "externalreference": transaction_id,
        "utilityref": external_id,
        "amount": amount,
        "transid": transaction_id,
        "msisdn": msisdn,
        "mnoreference": mnoreference,
    }
    if password is not None:
        body["password"] = password
    if private_key is not None:
        body["signature"] = sign_callback(private_key, body)
    return body


def status_answer(
    *, state: str, amount: str, external_id: str, transaction_id: str, mnoreference: str
) -> dict[str, Any]:
    """The status query's 200 body; `state` a Result or PENDING. An operator receipt exists only once money moved."""
    return {
        "data": STATUS_TEXT[state],
        "message": "Request successful.",
        "success": True,
        "statusCode": 200,
        "amount": amount,
        "utilityref": external_id,
        "reference": transaction_id,
        "mnoreference": mnoreference if state == Result.SUCCESS else "",
    }
