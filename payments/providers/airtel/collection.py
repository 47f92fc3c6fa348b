"""Airtel Money collections: the USSD push and the transaction enquiry that decides.

The push's "SUCCESS" only means the prompt was queued (`DP00800001006`): the payment is pending until the
enquiry (`GET /standard/v1/payments/{our id}`) says `TS`. Business refusals come back as HTTP 200 with
`status.success` false; the enquiry's `status.success` is not read at all (Airtel's own examples show it
false on a success). Shapes and codes: docs/providers/airtel.md.
"""

import logging
from dataclasses import dataclass
from urllib.parse import quote

import requests

from payments.providers.airtel.client import (
    AirtelClient,
    Envelope,
    airtel_id,
    envelope,
    json_bytes,
    national_msisdn,
    refusal,
)
from payments.providers.airtel.codes import (
    COLLECTION_AMBIGUOUS,
    COLLECTION_FORBIDDEN,
    COLLECTION_IN_PROCESS,
    COLLECTION_NOT_FOUND,
    COLLECTION_SUCCESS,
    ENQUIRY_PATH,
    ESB_DUPLICATE_ID,
    ESB_NOT_FOUND,
    ESB_SUCCESS,
    SUCCESS,
    status_for_state,
)
from payments.providers.airtel.signing import sign_body
from payments.providers.base import (
    ChargeRequest,
    PaymentRef,
    PaymentStatus,
    ProviderError,
    ProviderResult,
)
from payments.providers.http import response_object

logger = logging.getLogger("payments.airtel")

PROMPT_SENT = "Check your phone and enter your Airtel Money PIN to approve the payment."


@dataclass(frozen=True)
class CollectionSettings:
    path: str  # /merchant/v1/payments/ or /merchant/v2/payments/
    sign: bool  # v2 message signing (x-signature, x-key): independent of the path


def push(client: AirtelClient, settings: CollectionSettings, charge: ChargeRequest) -> ProviderResult:
    if charge.currency != client.currency:
        raise ProviderError(f"Airtel Money collects {client.currency} only here.", status_code=400)
    if charge.amount != charge.amount.to_integral_value() or charge.amount < 1:
        raise ProviderError(
            f"Airtel Money takes whole amounts only: {charge.currency} {charge.amount} is not one.", status_code=400
        )
    transaction_id = airtel_id(charge.reference)
    body = {
        "reference": transaction_id,  # 4–64 letters and digits; shown with the transaction
        "subscriber": {
            "country": client.country,
            "currency": client.currency,
            "msisdn": national_msisdn(charge.msisdn, client.country),
        },
        "transaction": {
            "amount": int(charge.amount),
            "country": client.country,
            "currency": client.currency,
            "id": transaction_id,
        },
    }
    raw = json_bytes(body)
    # Signing needs Airtel's key (configured, or fetched): fetched before the push, so a failure there sends
    # nothing and is a plain refusal.
    signature = sign_body(client.public_key(), raw) if settings.sign else {}
    response = client.send_bytes("POST", settings.path, raw, {**client.headers(), **signature})
    client.forget_token_if_refused(response)
    answer = envelope(response_object(response))
    outcome = push_outcome(response, answer)
    if outcome == "ambiguous":
        logger.warning(
            "Airtel Money push %s: outcome unknown (HTTP %s %s %s)",
            transaction_id,
            response.status_code,
            answer.result_code or answer.gateway_code,
            answer.response_code,
        )
        raise ProviderError(
            "Airtel Money did not say whether it sent the prompt.",
            retryable=True,
            status_code=response.status_code,
            ambiguous=True,
        )
    if outcome == "refused":
        logger.warning(
            "Airtel Money push %s refused: HTTP %s %s %s %s",
            transaction_id,
            response.status_code,
            answer.result_code or answer.gateway_code,
            answer.response_code,
            answer.message,
        )
        default = "Airtel Money did not send the payment prompt."
        if answer.response_code == COLLECTION_FORBIDDEN:
            default = "Airtel Money refused our request signature (check AIRTEL_SIGN_REQUESTS and the key)."
        raise ProviderError(
            refusal(response_object(response), default),
            retryable=response.status_code == 401,
            status_code=response.status_code,
        )
    return ProviderResult(
        status=PaymentStatus.PENDING,
        our_reference=transaction_id,
        amount=charge.amount,
        currency=client.currency,
        message=PROMPT_SENT,
    )


def push_outcome(response: requests.Response, answer: Envelope) -> str:
    """ "accepted", "refused" or "ambiguous" (the prompt may have been sent: never re-sent, the enquiry decides)."""
    http = response.status_code
    if http == 408 or http >= 500 or answer.gateway_code == "CONNECTION_TIMEOUT":
        return "ambiguous"  # 408: Airtel's gateway lost its own backend ("I/O Exception")
    if answer.result_code == ESB_DUPLICATE_ID:
        # We send each id once: a repeat names another transaction, whose outcome is not this payment's (its
        # DP00800001000 must not make us wait on, and then credit, someone else's state).
        return "refused"
    if answer.response_code == COLLECTION_AMBIGUOUS:
        return "ambiguous"
    if http == 200 and (
        answer.result_code == ESB_SUCCESS
        or answer.response_code in (COLLECTION_IN_PROCESS, COLLECTION_SUCCESS)
        or (answer.success is True and not answer.result_code and not answer.response_code)
    ):
        return "accepted"
    if 200 <= http < 300 and not answer.readable:
        return "ambiguous"  # an answer we cannot read to a request that moves money
    return "refused"


def enquire(client: AirtelClient, ref: PaymentRef) -> ProviderResult:
    """The transaction enquiry by our id (recomputed from our reference, as the push computed it)."""
    transaction_id = airtel_id(ref.reference)
    response = client.get(ENQUIRY_PATH.format(id=quote(transaction_id, safe="")))
    payload = response_object(response)
    answer = envelope(payload)
    if response.status_code == 408 or response.status_code >= 500 or response.status_code == 401:
        raise ProviderError(
            refusal(payload, "Airtel Money did not answer the transaction enquiry."),
            retryable=True,
            status_code=response.status_code,
        )
    transaction = answer.transaction
    state = str(transaction.get("status") or "").strip()
    if not state:
        if answer.result_code == ESB_NOT_FOUND or answer.response_code == COLLECTION_NOT_FOUND:
            # Not (yet) known to Airtel: a push that never arrived, or asked too early. Never a failure.
            return ProviderResult(
                status=PaymentStatus.UNKNOWN,
                message=f"Airtel Money has no transaction {transaction_id} (yet).",
            )
        if response.status_code != 200:
            raise ProviderError(
                refusal(payload, "Airtel Money refused the transaction enquiry."), status_code=response.status_code
            )
        return ProviderResult(
            status=PaymentStatus.UNKNOWN,
            message=refusal(payload, "Airtel Money's enquiry answer named no state."),
        )
    message = str(transaction.get("message") or "").strip()
    status, reason = status_for_state(state, answer.response_code, message)
    airtel_money_id = str(transaction.get("airtel_money_id") or "").strip()
    if status == PaymentStatus.SUCCEEDED and not airtel_money_id:
        logger.warning("Airtel Money enquiry of %s: TS without an airtel_money_id", transaction_id)
    code = state.upper() + (f" {answer.response_code}" if answer.response_code else "")
    # The question named our id (the URL path), which binds the answer to the payment
    # (AirtelProvider.status_asks_by_our_reference); the answer's own `id` is not echoed reliably (Airtel's
    # documented example shows an unrelated one), so it is not reported as our reference, and nothing of ours
    # is filled in for it. The enquiry carries no amount.
    return ProviderResult(
        status=status,
        provider_reference=airtel_money_id,
        receipt=airtel_money_id if status == PaymentStatus.SUCCEEDED else "",
        message=reason if state.upper() == SUCCESS else f"{reason} (Airtel {code})"[:255],
    )
