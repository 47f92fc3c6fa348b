"""MTN MoMo Disbursement: transfers to a wallet (a treatment partner's), their status and their callback.

Like a request to pay: our UUID X-Reference-Id (stored before the request), the Disbursement product's own
subscription key and token, 202 = queued, the result by callback (once, no retry) or by the status GET.
Shapes: docs/providers/mtn.md, "Disbursement".
"""

import logging

from payments.providers.base import (
    CallbackMalformed,
    PaymentStatus,
    PayoutAccepted,
    PayoutRequest,
    PayoutResult,
    ProviderError,
)
from payments.providers.http import response_object
from payments.providers.mtn.client import (
    NAME,
    MtnClient,
    normalize_msisdn,
    query_failed,
    reference_id,
    refused,
    safe_text,
    whole_amount,
)
from payments.providers.mtn.codes import DISBURSEMENT, NOT_VISIBLE_TEXT, SUCCESSFUL, TRANSFER_PATH
from payments.providers.mtn.status import MtnStatus, read_status, read_status_body

logger = logging.getLogger("payments.mtn")
PAYOUT_TEXT = "Treatment payout"


def transfer(client: MtnClient, payout: PayoutRequest, *, currency: str) -> PayoutAccepted:
    """Send money to a wallet, once. A timeout or a 5xx after sending is ambiguous: never re-sent."""
    if payout.currency != currency:
        raise ProviderError(f"{NAME} pays out {currency} here, not {payout.currency}.", status_code=400)
    amount = whole_amount(payout.amount, payout.currency, "payouts")
    msisdn = normalize_msisdn(payout.msisdn)
    ref_id = reference_id(payout.provider_reference, f"transfer {payout.reference}")
    text = safe_text(payout.remarks, PAYOUT_TEXT)
    body = {
        "amount": amount,
        "currency": payout.currency,
        "externalId": payout.reference,
        "payee": {"partyIdType": "MSISDN", "partyId": msisdn},
        "payerMessage": text,
        "payeeNote": text,
    }
    response = client.request(
        DISBURSEMENT,
        "POST",
        TRANSFER_PATH,
        json=body,
        reference_id=ref_id,
        callback_url=payout.result_url,
        moves_money=True,
    )
    if response.status_code != 202:
        raise refused(response, f"{NAME} did not accept the payout.", what="payout")
    logger.info("MTN MoMo transfer %s accepted for payout %s", ref_id, payout.reference)
    return PayoutAccepted(provider_reference=ref_id, message=f"Accepted by {NAME}.")


def transfer_status(client: MtnClient, *, reference: str, provider_reference: str) -> PayoutResult:
    """MTN's word on a transfer; PENDING while it has none (PENDING, CREATED, a status we do not know,
    or a 404 right after the 202)."""
    if not provider_reference:
        return not_decided(reference, "", "NO_REFERENCE_ID", f"No {NAME} X-Reference-Id to ask about yet.")
    response = client.request(DISBURSEMENT, "GET", f"{TRANSFER_PATH}/{provider_reference}")
    if response.status_code == 404:
        return not_decided(reference, provider_reference, "RESOURCE_NOT_FOUND", NOT_VISIBLE_TEXT)
    if response.status_code != 200:
        raise query_failed(response, f"{NAME} did not answer the payout status query.")
    try:
        found = read_status(response_object(response))
    except CallbackMalformed as exc:
        logger.warning("MTN MoMo transfer status of %s unreadable: %s", provider_reference, exc)
        return not_decided(reference, provider_reference, "UNREADABLE", f"Unreadable {NAME} answer: {exc}")
    status, message = found.outcome()
    if status in (PaymentStatus.PENDING, PaymentStatus.UNKNOWN):
        return not_decided(found.external_id or reference, provider_reference, found.reason or found.status, message)
    return payout_result(found, our_reference=found.external_id or reference, provider_reference=provider_reference)


def not_decided(reference: str, provider_reference: str, code: str, description: str) -> PayoutResult:
    return PayoutResult(
        our_reference=reference,
        provider_reference=provider_reference,
        code=code,
        description=description,
        status=PaymentStatus.PENDING,
    )


def parse_transfer_result(body: bytes) -> PayoutResult:
    """The transfer's status object MTN sends to the callback URL (with `payee`)."""
    found = read_status_body(body)
    if not (found.external_id or found.reference_id):
        raise CallbackMalformed("externalId (our payout reference) or referenceId is required")
    if found.outcome()[0] in (PaymentStatus.PENDING, PaymentStatus.UNKNOWN):
        # MTN calls back once the transfer is final. Not read as PENDING: the payout callback service
        # applies whatever a callback says (the status query is where "not yet" belongs).
        raise CallbackMalformed(f"status {found.status} is not a final payout result")
    return payout_result(found, our_reference=found.external_id, provider_reference=found.reference_id)


def payout_result(found: MtnStatus, *, our_reference: str, provider_reference: str) -> PayoutResult:
    status, message = found.outcome()
    succeeded = status == PaymentStatus.SUCCEEDED
    return PayoutResult(
        our_reference=our_reference,
        provider_reference=provider_reference,
        code=SUCCESSFUL if succeeded else (found.reason or found.status),
        description="The payout was received." if succeeded else message,
        status=PaymentStatus.SUCCEEDED if succeeded else PaymentStatus.FAILED,
        receipt=found.financial_transaction_id if succeeded else "",
        amount=found.amount,
        currency=found.currency,
    )
