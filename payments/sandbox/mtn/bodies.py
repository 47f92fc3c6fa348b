"""MTN MoMo's status object, the one body MTN sends: the status GET's answer of a request to pay, a transfer or
a refund, and (PUT to the X-Callback-Url, without `referenceId`) its callback. A pure function of values, shared
by the simulator, `manage.py simulate_callback`, the fault harness and the tests (docs/providers/mtn.md).
"""

import secrets
from typing import Any

from payments.sandbox.outcomes import Result

# The reason MTN names for each scripted failure.
RESULT_REASONS: dict[Result, str] = {
    Result.INSUFFICIENT_FUNDS: "NOT_ENOUGH_FUNDS",
    Result.CANCELLED: "APPROVAL_REJECTED",
    Result.TIMEOUT: "EXPIRED",
    Result.DECLINED: "APPROVAL_REJECTED",
    Result.FAILED: "INTERNAL_PROCESSING_ERROR",
}


def new_financial_transaction_id() -> str:
    """MTN's financialTransactionId: nine digits."""
    return str(secrets.randbelow(9 * 10**8) + 10**8)


def status_object(
    *,
    external_id: str,
    amount: str,
    currency: str,
    msisdn: str,
    status: str,
    party: str = "payer",
    payer_message: str = "",
    payee_note: str = "",
    financial_transaction_id: str = "",
    reason: str = "",
) -> dict[str, Any]:
    """The status object. `party`: "payer" (request to pay) or "payee" (transfer, refund); `status`: PENDING or
    CREATED (before the decision), SUCCESSFUL (with `financial_transaction_id`, listed first as MTN does) or FAILED
    (with `reason`, e.g. RESULT_REASONS[result])."""
    body: dict[str, Any] = {
        "externalId": external_id,
        "amount": amount,
        "currency": currency,
        party: {"partyIdType": "MSISDN", "partyId": msisdn},
        "payerMessage": payer_message,
        "payeeNote": payee_note,
    }
    if status == "SUCCESSFUL":
        return {"financialTransactionId": financial_transaction_id or new_financial_transaction_id(), **body,
                "status": status}  # fmt: skip
    body["status"] = status
    if status == "FAILED":
        body["reason"] = reason or RESULT_REASONS[Result.FAILED]
    return body
