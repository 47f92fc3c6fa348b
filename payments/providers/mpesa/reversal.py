"""M-Pesa refunds: Daraja's Transaction Reversal of the payment's M-Pesa receipt. One request, never retried;
the result arrives by callback (`{"Result": {...}}`) at the result URL, or a queue timeout at the timeout
URL, both carrying the initiator URLs' secret (MPESA_B2C_TOKEN). Daraja reverses whole transactions here:
no partial refunds. Shapes and codes: docs/providers/mpesa.md ("Reversal")."""

from payments.providers.base import (
    PaymentStatus,
    ProviderError,
    RefundAccepted,
    RefundRequest,
    RefundResult,
    parse_money,
)
from payments.providers.http import response_object
from payments.providers.mpesa.client import DarajaClient, refusal
from payments.providers.mpesa.codes import SAFE_TEXT_RE, clean_desc
from payments.providers.mpesa.fields import initiator_result, result_parameters, text_field
from payments.providers.mpesa.payouts import B2CSettings

REVERSAL_PATH = "/mpesa/reversal/v1/request"
SUCCESS = "0"
ALREADY_REVERSED = "R000001"  # someone reversed it already (the org portal): the money is back
RECEIVER_IS_SHORTCODE = "11"


def send(client: DarajaClient, initiator: B2CSettings, shortcode: str, refund: RefundRequest) -> RefundAccepted:
    if not refund.payment_receipt:
        raise ProviderError("M-Pesa reverses a payment by its M-Pesa receipt, and this payment has none.")
    if not (initiator.initiator_name and initiator.security_credential):
        raise ProviderError("M-Pesa reversals need MPESA_INITIATOR_NAME and MPESA_SECURITY_CREDENTIAL.")
    body = {
        "Initiator": initiator.initiator_name,
        "SecurityCredential": initiator.security_credential,
        "CommandID": "TransactionReversal",
        "TransactionID": refund.payment_receipt,
        "Amount": int(refund.amount),
        "ReceiverParty": shortcode,
        "RecieverIdentifierType": RECEIVER_IS_SHORTCODE,  # sic: Daraja's spelling
        "ResultURL": refund.result_url,
        "QueueTimeOutURL": refund.timeout_url,
        "Remarks": (SAFE_TEXT_RE.sub("", refund.reason) or "Donation refund")[:100].ljust(2, "."),
        "Occasion": "Refund",
        # Our id for the reversal, as B2C v3 takes it. Daraja's Reversal page lists it only in the answer and
        # the result; where it is not echoed, the result is matched by its ConversationID or by the receipt
        # it reverses (docs/providers/mpesa.md, "Reversal").
        "OriginatorConversationID": refund.reference,
    }
    response = client.api.request("POST", REVERSAL_PATH, json=body, headers=client.headers(), moves_money=True)
    payload = response_object(response)
    if response.status_code != 200 or str(payload.get("ResponseCode", "")).strip() != "0":
        client.forget_token_if_refused(payload)
        raise ProviderError(
            refusal(payload, "M-Pesa did not accept the reversal."),
            retryable=response.status_code >= 500,
            status_code=response.status_code,
            ambiguous=response.status_code >= 500,
        )
    return RefundAccepted(
        provider_reference=str(payload.get("ConversationID") or ""),
        message=str(payload.get("ResponseDescription") or ""),
    )


def parse_result(body: bytes) -> RefundResult:
    result, conversation, code = initiator_result(body)
    status = PaymentStatus.SUCCEEDED if code in (SUCCESS, ALREADY_REVERSED) else PaymentStatus.FAILED
    values = result_parameters(result)
    return RefundResult(
        # Ours when Daraja echoes the OriginatorConversationID we sent; its ConversationID, or the receipt it
        # reverses (OriginalTransactionID, on a success only), find the refund otherwise.
        our_reference=text_field(result, "OriginatorConversationID"),
        provider_reference=conversation,
        status=status,
        message=f"{clean_desc(result.get('ResultDesc'))} (M-Pesa {code})"[:255],
        receipt=text_field(result, "TransactionID") if status == PaymentStatus.SUCCEEDED else "",
        amount=parse_money(values.get("Amount")),
        reversed_receipt=str(values.get("OriginalTransactionID") or "").strip(),
    )
