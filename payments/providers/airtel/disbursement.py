"""Airtel Money disbursements (payouts to a treatment partner's wallet): `POST /standard/v1/disbursements/` with
the PIN encrypted with Airtel's RSA key, our id as `transaction.id`, and `GET /standard/v1/disbursements/{id}`
to ask about it. The answer is synchronous (`TS` with `DP00900001001`); Airtel documents no disbursement
callback. `DP00900001000` (ambiguous), a timeout, a 5xx, or a "duplicate" answer may mean the money moved:
the payout is never re-sent with a new id before an enquiry says `TF`. Shapes: docs/providers/airtel.md.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from payments.providers.airtel.callbacks import callback_transaction, field
from payments.providers.airtel.client import (
    AirtelClient,
    Envelope,
    airtel_id,
    envelope,
    national_msisdn,
    refusal,
)
from payments.providers.airtel.codes import (
    AMBIGUOUS,
    DISBURSEMENT_CODES,
    DISBURSEMENT_ENQUIRY_PATH,
    DISBURSEMENT_PATH,
    DISBURSEMENT_PROCESSING,
    DISBURSEMENT_SUCCESS,
    DISBURSEMENT_UNSETTLED,
    ESB_SUCCESS,
    FAILURE,
    IN_PROGRESS,
    SUCCESS,
)
from payments.providers.airtel.signing import encrypt_pin
from payments.providers.base import (
    CallbackMalformed,
    PaymentStatus,
    PayoutAccepted,
    PayoutRequest,
    PayoutResult,
    ProviderError,
    load_json_object,
)
from payments.providers.http import response_object

logger = logging.getLogger("payments.airtel")


@dataclass(frozen=True)
class DisbursementSettings:
    pin: str  # AIRTEL_DISBURSEMENT_PIN, in clear: encrypted for every request
    pin_padding: str  # "pkcs1" (default) or "oaep"


def payout_id(reference: str, provider_reference: str = "") -> str:
    """The id Airtel knows the payout by: the one chosen before the request, else our reference's form."""
    return provider_reference or airtel_id(reference)


def send(client: AirtelClient, settings: DisbursementSettings, payout: PayoutRequest) -> PayoutAccepted:
    if payout.currency != client.currency:
        raise ProviderError(f"Airtel Money pays {client.currency} only here.", status_code=400)
    if payout.amount != payout.amount.to_integral_value() or payout.amount < 1:
        raise ProviderError("Airtel Money pays whole amounts only.", status_code=400)
    if not settings.pin:
        raise ProviderError("Airtel Money payouts need AIRTEL_DISBURSEMENT_PIN.")
    transaction_id = payout_id(payout.reference, payout.provider_reference)
    body = {
        "payee": {"msisdn": national_msisdn(payout.msisdn, client.country)},
        "reference": transaction_id,
        "pin": encrypt_pin(client.public_key(), settings.pin, settings.pin_padding),
        "transaction": {"amount": int(payout.amount), "id": transaction_id},
    }
    response = client.post_money(DISBURSEMENT_PATH, body)
    payload = response_object(response)
    answer = envelope(payload)
    outcome = send_outcome(response, answer)
    if outcome == "ambiguous":
        logger.warning(
            "Airtel Money disbursement %s: outcome unknown (HTTP %s %s)",
            transaction_id,
            response.status_code,
            answer.response_code or answer.gateway_code,
        )
        raise ProviderError(
            refusal(payload, "Airtel Money did not say whether it paid.") + " Never re-send it: ask Airtel first.",
            retryable=True,
            status_code=response.status_code,
            ambiguous=True,
        )
    if outcome == "refused":
        logger.warning(
            "Airtel Money disbursement %s refused: HTTP %s %s %s",
            transaction_id,
            response.status_code,
            answer.result_code or answer.gateway_code,
            answer.response_code,
        )
        raise ProviderError(
            refusal(payload, "Airtel Money did not accept the payout."),
            retryable=response.status_code == 401,
            status_code=response.status_code,
        )
    # The answer's message carries the disbursement wallet's balance: log the code, not the text.
    logger.info("Airtel Money disbursement %s accepted: %s", transaction_id, answer.response_code or "-")
    message = DISBURSEMENT_CODES.get(answer.response_code, "Accepted by Airtel Money.")
    state = str(answer.transaction.get("status") or "").strip().upper()
    paid = None
    if state == SUCCESS:  # paid at once: the answer is the result (no need to wait for the enquiry)
        paid = PayoutResult(
            our_reference=payout.reference,
            provider_reference=transaction_id,
            code=answer.response_code or SUCCESS,
            description=message,
            status=PaymentStatus.SUCCEEDED,
            receipt=str(answer.transaction.get("reference_id") or answer.transaction.get("airtel_money_id") or ""),
        )
    return PayoutAccepted(provider_reference=transaction_id, message=message, result=paid)


def send_outcome(response: requests.Response, answer: Envelope) -> str:
    """ "accepted" (paid, or processing), "refused" (nothing moved) or "ambiguous" (it may have moved)."""
    http = response.status_code
    state = str(answer.transaction.get("status") or "").strip().upper()
    if http == 408 or http >= 500 or answer.gateway_code == "CONNECTION_TIMEOUT":
        return "ambiguous"
    if answer.response_code in DISBURSEMENT_UNSETTLED or state == AMBIGUOUS:
        return "ambiguous"
    if http == 200 and (
        state in (SUCCESS, IN_PROGRESS)
        or answer.response_code in (DISBURSEMENT_SUCCESS, DISBURSEMENT_PROCESSING)
        or (answer.result_code == ESB_SUCCESS and state != FAILURE)
    ):
        return "accepted"
    if 200 <= http < 300 and not answer.readable:
        return "ambiguous"
    return "refused"


def enquire(client: AirtelClient, *, reference: str, provider_reference: str) -> PayoutResult:
    """The disbursement enquiry; a payout not decided yet (or not found yet) is `pending`."""
    transaction_id = payout_id(reference, provider_reference)
    response = client.get(DISBURSEMENT_ENQUIRY_PATH.format(id=quote(transaction_id, safe="")))
    payload = response_object(response)
    answer = envelope(payload)
    if response.status_code == 408 or response.status_code >= 500 or response.status_code == 401:
        raise ProviderError(
            refusal(payload, "Airtel Money did not answer the disbursement enquiry."),
            retryable=True,
            status_code=response.status_code,
        )
    if response.status_code != 200 and not answer.transaction and not answer.result_code:
        raise ProviderError(
            refusal(payload, "Airtel Money refused the disbursement enquiry."), status_code=response.status_code
        )
    return _result(answer.transaction, answer, our_reference=reference, transaction_id=transaction_id)


def parse_result(body: bytes) -> PayoutResult:
    """A disbursement result delivered to /webhooks/airtel/disbursement/ (Airtel documents none; the shape
    of its answer and enquiry, or of the collection callback, is accepted)."""
    data = load_json_object(body)
    transaction = callback_transaction(data)
    transaction_id = field(transaction, "id", required=True)
    answer = envelope(data)
    if not (field(transaction, "status") or field(transaction, "status_code")):
        raise CallbackMalformed("transaction.status (or transaction.status_code) is required")
    return _result(transaction, answer, our_reference="", transaction_id=transaction_id)


def _result(
    transaction: Mapping[str, Any], answer: Envelope, *, our_reference: str, transaction_id: str
) -> PayoutResult:
    state = str(transaction.get("status") or transaction.get("status_code") or "").strip().upper()
    receipt = str(transaction.get("airtel_money_id") or transaction.get("reference_id") or "").strip()
    code = answer.response_code or state or answer.result_code
    description = str(transaction.get("message") or "").strip() or DISBURSEMENT_CODES.get(answer.response_code, "")
    if state == SUCCESS:
        return PayoutResult(
            our_reference, transaction_id, code, description or "Paid.", PaymentStatus.SUCCEEDED, receipt=receipt
        )
    if state == FAILURE:
        return PayoutResult(
            our_reference, transaction_id, code, description or "The payout failed.", PaymentStatus.FAILED
        )
    # TA, TIP, TI, unknown states, and "no transaction with this id" yet: not decided.
    return PayoutResult(
        our_reference,
        transaction_id,
        code,
        description or answer.message or "Not decided yet.",
        PaymentStatus.PENDING,
    )
