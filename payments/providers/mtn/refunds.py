"""MTN MoMo refunds: a Disbursement-product call that gives (part of) a completed request to pay back to its
payer, named by the payment's X-Reference-Id (`referenceIdToRefund`). Our own UUID X-Reference-Id for the
refund, stored before the request; 202 = queued; the result by callback or by the status GET.
Shapes: docs/providers/mtn.md, "Refunds"."""

import logging
import uuid

from payments.providers.base import (
    CallbackMalformed,
    PaymentStatus,
    ProviderError,
    RefundAccepted,
    RefundRequest,
    RefundResult,
)
from payments.providers.http import response_object
from payments.providers.mtn.client import NAME, MtnClient, query_failed, reference_id, refused, safe_text, whole_amount
from payments.providers.mtn.codes import DISBURSEMENT, NOT_VISIBLE_TEXT, REFUND_PATH
from payments.providers.mtn.status import MtnStatus, read_status, read_status_body

logger = logging.getLogger("payments.mtn")
REFUND_TEXT = "Donation refund"
# A refund either happened or did not: a cancelled or expired one is a failed one.
REFUND_STATUSES = {
    PaymentStatus.SUCCEEDED: PaymentStatus.SUCCEEDED,
    PaymentStatus.PENDING: PaymentStatus.PENDING,
    PaymentStatus.UNKNOWN: PaymentStatus.UNKNOWN,
}


def refund(client: MtnClient, request: RefundRequest, *, currency: str) -> RefundAccepted:
    """Ask for the refund once. A timeout or a 5xx after sending is ambiguous: never re-sent."""
    if request.currency != currency:
        raise ProviderError(f"{NAME} refunds {currency} here, not {request.currency}.", status_code=400)
    amount = whole_amount(request.amount, request.currency, "refunds")
    try:
        original = str(uuid.UUID(request.payment_reference))
    except ValueError as exc:
        raise ProviderError(
            f"{NAME} refunds name the payment's X-Reference-Id; {request.payment_reference!r} is not one."
        ) from exc
    ref_id = reference_id(request.provider_reference, f"refund {request.reference}")
    text = safe_text(request.reason, REFUND_TEXT)
    body = {
        "amount": amount,
        "currency": request.currency,
        "externalId": request.reference,
        "payerMessage": text,
        "payeeNote": text,
        "referenceIdToRefund": original,
    }
    response = client.request(
        DISBURSEMENT,
        "POST",
        REFUND_PATH,
        json=body,
        reference_id=ref_id,
        callback_url=request.result_url,
        moves_money=True,
    )
    if response.status_code != 202:
        raise refused(response, f"{NAME} did not accept the refund.", what="refund")
    logger.info("MTN MoMo refund %s of %s accepted for %s", ref_id, original, request.reference)
    return RefundAccepted(provider_reference=ref_id, message=f"Accepted by {NAME}.")


def refund_status(client: MtnClient, *, reference: str, provider_reference: str) -> RefundResult:
    if not provider_reference:
        return RefundResult(
            our_reference=reference,
            provider_reference="",
            status=PaymentStatus.UNKNOWN,
            message=f"No {NAME} X-Reference-Id to ask about yet.",
        )
    response = client.request(DISBURSEMENT, "GET", f"{REFUND_PATH}/{provider_reference}")
    if response.status_code == 404:
        return RefundResult(reference, provider_reference, PaymentStatus.PENDING, NOT_VISIBLE_TEXT)
    if response.status_code != 200:
        raise query_failed(response, f"{NAME} did not answer the refund status query.")
    try:
        found = read_status(response_object(response))
    except CallbackMalformed as exc:
        return RefundResult(reference, provider_reference, PaymentStatus.UNKNOWN, f"Unreadable answer: {exc}")
    return refund_result(found, our_reference=found.external_id or reference, provider_reference=provider_reference)


def parse_refund_result(body: bytes) -> RefundResult:
    """The refund's status object MTN sends to the callback URL (no `referenceId` in v1 bodies)."""
    found = read_status_body(body)
    return refund_result(found, our_reference=found.external_id, provider_reference=found.reference_id)


def refund_result(found: MtnStatus, *, our_reference: str, provider_reference: str) -> RefundResult:
    status, message = found.outcome()
    if status == PaymentStatus.SUCCEEDED:
        message = "The refund was paid."
    return RefundResult(
        our_reference=our_reference,
        provider_reference=provider_reference,
        status=REFUND_STATUSES.get(status, PaymentStatus.FAILED),
        message=message,
        # MTN's own id of the money going back (what the payer's SMS shows); only a paid refund has one.
        receipt=found.financial_transaction_id if status == PaymentStatus.SUCCEEDED else "",
        amount=found.amount,
        currency=found.currency,
    )
