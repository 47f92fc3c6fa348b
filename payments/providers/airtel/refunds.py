"""Airtel Money refunds: `POST /standard/v1/payments/refund` with `{"transaction": {"airtel_money_id"}}`, the
id of the successful payment (its receipt). The body has no amount: refunds are of the whole payment only.
Airtel documents no refund enquiry and no refund callback (docs/providers/airtel.md, "Refunds")."""

import logging

import requests

from payments.providers.airtel.client import AirtelClient, Envelope, envelope, refusal
from payments.providers.airtel.codes import COLLECTION_AMBIGUOUS, ESB_SUCCESS, SUCCESS
from payments.providers.airtel.codes import REFUND_PATH as PATH
from payments.providers.base import PaymentStatus, ProviderError, RefundAccepted, RefundRequest
from payments.providers.http import response_object

logger = logging.getLogger("payments.airtel")

ACCEPTED_STATES = ("SUCCESS", SUCCESS)


def send(client: AirtelClient, refund: RefundRequest) -> RefundAccepted:
    """Ask once. A timeout, a 5xx or an ambiguous code is ProviderError(ambiguous=True): never re-sent."""
    money_id = (refund.payment_receipt or refund.payment_reference).strip()
    if not money_id:
        raise ProviderError("This payment has no Airtel Money id (airtel_money_id) to refund.")
    if refund.currency != client.currency:
        raise ProviderError(f"Airtel Money refunds {client.currency} only here.", status_code=400)
    response = client.post_money(PATH, {"transaction": {"airtel_money_id": money_id}})
    payload = response_object(response)
    answer = envelope(payload)
    outcome = refund_outcome(response, answer)
    if outcome == "ambiguous":
        logger.warning("Airtel Money refund of %s: outcome unknown (HTTP %s)", money_id, response.status_code)
        raise ProviderError(
            refusal(payload, "Airtel Money did not say whether it refunded."),
            retryable=True,
            status_code=response.status_code,
            ambiguous=True,
        )
    if outcome == "refused":
        logger.warning(
            "Airtel Money refund of %s refused: HTTP %s %s %s",
            money_id,
            response.status_code,
            answer.result_code or answer.gateway_code,
            answer.response_code,
        )
        raise ProviderError(
            refusal(payload, "Airtel Money did not accept the refund."),
            retryable=response.status_code == 401,
            status_code=response.status_code,
        )
    money_back = str(answer.transaction.get("airtel_money_id") or "").strip()
    return RefundAccepted(
        provider_reference=money_back,
        message=answer.message or "Refund accepted by Airtel Money.",
        # Airtel has no refund enquiry and no refund callback: its answer is the result.
        status=refund_state(answer),
        receipt=money_back,
    )


def refund_state(answer: Envelope) -> PaymentStatus:
    """What an accepted refund answer says happened. Airtel documents `data.transaction.status` "SUCCESS" with
    `result_code` ESB000010 (docs/providers/airtel.md, "Refunds"); `TS` is its enquiry word for the same. An
    answer naming a state still in progress (TIP, TA, …) is not a result: a person resolves it."""
    state = str(answer.transaction.get("status") or "").strip().upper()
    if state in ACCEPTED_STATES:
        return PaymentStatus.SUCCEEDED
    if not state and answer.result_code == ESB_SUCCESS:
        return PaymentStatus.SUCCEEDED
    return PaymentStatus.PENDING


def refund_outcome(response: requests.Response, answer: Envelope) -> str:
    http = response.status_code
    state = str(answer.transaction.get("status") or "").strip().upper()
    if http == 408 or http >= 500 or answer.gateway_code == "CONNECTION_TIMEOUT":
        return "ambiguous"
    if answer.response_code == COLLECTION_AMBIGUOUS:
        return "ambiguous"
    # `status.success` is false in Airtel's own refund example: the ESB code and the state decide.
    if http == 200 and (state in ACCEPTED_STATES or answer.result_code == ESB_SUCCESS):
        return "accepted"
    if 200 <= http < 300 and not answer.readable:
        return "ambiguous"
    return "refused"
