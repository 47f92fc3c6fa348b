"""MTN MoMo Collection: request to pay (the PIN prompt), its status, and its callback.

The X-Reference-Id is ours: the service stores it before the request leaves, so whatever happens to the
request the status GET can ask about it. 202 (empty body) means queued, never paid; only the status GET
decides. Right after the 202 the GET may answer 404 for a moment: that is "not visible yet", pending, never
a failure. MTN signs nothing and sends its callback once, without retry. Shapes: docs/providers/mtn.md.
"""

import logging
from dataclasses import dataclass

from payments.providers.base import (
    CallbackMalformed,
    ChargeRequest,
    PaymentRef,
    PaymentStatus,
    ProviderError,
    ProviderResult,
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
from payments.providers.mtn.codes import COLLECTION, NOT_VISIBLE_TEXT, REQUEST_TO_PAY_PATH
from payments.providers.mtn.status import MtnStatus, read_status, read_status_body

logger = logging.getLogger("payments.mtn")


@dataclass(frozen=True)
class CollectionSettings:
    currency: str  # MTN_CURRENCY: the one the target environment takes (EUR in MTN's sandbox)
    payer_message: str = "Donation"
    payee_note: str = "Donation"


def request_to_pay(client: MtnClient, settings: CollectionSettings, charge: ChargeRequest) -> ProviderResult:
    if charge.currency != settings.currency:
        raise ProviderError(f"{NAME} collects {settings.currency} here, not {charge.currency}.", status_code=400)
    amount = whole_amount(charge.amount, charge.currency, "payments")
    msisdn = normalize_msisdn(charge.msisdn)
    ref_id = reference_id(charge.provider_reference, f"request to pay {charge.reference}")
    body = {
        "amount": amount,
        "currency": charge.currency,
        "externalId": charge.reference,
        "payer": {"partyIdType": "MSISDN", "partyId": msisdn},
        # Shown only in the transaction history (the prompt is MTN's own text).
        "payerMessage": safe_text(charge.description, settings.payer_message),
        "payeeNote": safe_text(f"{settings.payee_note} {charge.reference}", settings.payee_note),
    }
    # Money-moving: sent once (once more only after a 401, the gateway's refusal, with the same id).
    response = client.request(
        COLLECTION,
        "POST",
        REQUEST_TO_PAY_PATH,
        json=body,
        reference_id=ref_id,
        callback_url=charge.callback_url,
        moves_money=True,
    )
    if response.status_code != 202:
        raise refused(response, f"{NAME} did not send the payment prompt.", what="request to pay")
    logger.info("MTN MoMo request to pay %s accepted for %s", ref_id, charge.reference)
    return ProviderResult(
        status=PaymentStatus.PENDING,
        provider_reference=ref_id,
        our_reference=charge.reference,
        amount=charge.amount,
        currency=charge.currency,
        message="Check your phone and approve the MTN MoMo payment with your PIN.",
    )


def payment_status(client: MtnClient, ref: PaymentRef) -> ProviderResult:
    if not ref.provider_reference:
        return ProviderResult(
            status=PaymentStatus.UNKNOWN,
            message=f"No {NAME} X-Reference-Id to ask about yet.",
        )
    response = client.request(COLLECTION, "GET", f"{REQUEST_TO_PAY_PATH}/{ref.provider_reference}")
    if response.status_code == 404:
        # Right after the 202 the transaction may not be visible yet: pending, asked again on the ladder.
        return ProviderResult(
            status=PaymentStatus.PENDING, provider_reference=ref.provider_reference, message=NOT_VISIBLE_TEXT
        )
    if response.status_code != 200:
        raise query_failed(response, f"{NAME} did not answer the status query.")
    try:
        found = read_status(response_object(response))
    except CallbackMalformed as exc:
        logger.warning("MTN MoMo status of %s unreadable: %s", ref.provider_reference, exc)
        return ProviderResult(
            status=PaymentStatus.UNKNOWN,
            provider_reference=ref.provider_reference,
            message=f"Unreadable {NAME} status answer: {exc}",
        )
    return result_of(found, provider_reference=ref.provider_reference)


def parse_callback(body: bytes) -> ProviderResult:
    """The status object MTN PUTs (or POSTs) to X-Callback-Url. No `referenceId` in v1 bodies: the URL's secret
    (or `externalId`, ours) finds the payment."""
    found = read_status_body(body)
    return result_of(found, provider_reference=found.reference_id)


def result_of(found: MtnStatus, *, provider_reference: str) -> ProviderResult:
    status, message = found.outcome()
    return ProviderResult(
        status=status,
        provider_reference=provider_reference,
        our_reference=found.external_id,
        amount=found.amount,
        currency=found.currency,
        receipt=found.financial_transaction_id if status == PaymentStatus.SUCCEEDED else "",
        msisdn=found.party_id,
        message=message,
    )
