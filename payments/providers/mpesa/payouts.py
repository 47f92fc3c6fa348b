"""M-Pesa B2C: pay a wallet (a treatment partner's). One request, never retried; the result arrives by
callback (`{"Result": {...}}`) at the result URL, or a queue timeout at the timeout URL, both carrying our
secret (MPESA_B2C_TOKEN). Shapes and codes: docs/providers/mpesa.md."""

from dataclasses import dataclass

from payments.providers.base import (
    CallbackMalformed,
    PaymentStatus,
    PayoutAccepted,
    PayoutRequest,
    PayoutResult,
    ProviderError,
    load_json,
    parse_money,
)
from payments.providers.http import response_object
from payments.providers.mpesa.client import DarajaClient, normalize_phone, refusal
from payments.providers.mpesa.codes import SAFE_TEXT_RE, clean_desc
from payments.providers.mpesa.fields import result_parameters, text_field

B2C_PATH = "/mpesa/b2c/v3/paymentrequest"
SUCCESS = "0"


@dataclass(frozen=True)
class B2CSettings:
    shortcode: str
    initiator_name: str
    security_credential: str  # the initiator's password, encrypted with Safaricom's certificate


def send(client: DarajaClient, b2c: B2CSettings, payout: PayoutRequest) -> PayoutAccepted:
    """Send money to a wallet. A money-moving POST: sent once; a timeout is ambiguous, never retried here."""
    amount = payout.amount
    if amount != amount.to_integral_value() or amount < 1:
        raise ProviderError("M-Pesa pays whole shillings only.", status_code=400)
    if not (b2c.initiator_name and b2c.security_credential):
        raise ProviderError("M-Pesa B2C needs MPESA_INITIATOR_NAME and MPESA_SECURITY_CREDENTIAL.")
    body = {
        "OriginatorConversationID": payout.reference,
        "InitiatorName": b2c.initiator_name,
        "SecurityCredential": b2c.security_credential,
        "CommandID": "BusinessPayment",
        "Amount": int(amount),
        "PartyA": b2c.shortcode,
        "PartyB": normalize_phone(payout.msisdn),
        "Remarks": (SAFE_TEXT_RE.sub("", payout.remarks) or "Treatment payout")[:100].ljust(2, "."),
        "QueueTimeOutURL": payout.timeout_url,
        "ResultURL": payout.result_url,
        "Occassion": "Treatment",  # sic: Daraja's spelling
    }
    response = client.api.request("POST", B2C_PATH, json=body, headers=client.headers(), moves_money=True)
    payload = response_object(response)
    if response.status_code != 200 or str(payload.get("ResponseCode", "")).strip() != "0":
        client.forget_token_if_refused(payload)
        # A 5xx answer to a payout does not say the money stayed: it may have been sent. Ambiguous, never
        # re-sent; a 4xx is a refusal (nothing moved).
        raise ProviderError(
            refusal(payload, "M-Pesa did not accept the payout."),
            retryable=response.status_code >= 500,
            status_code=response.status_code,
            ambiguous=response.status_code >= 500,
        )
    return PayoutAccepted(
        provider_reference=str(payload.get("ConversationID") or ""),
        message=str(payload.get("ResponseDescription") or ""),
    )


def parse_result(body: bytes) -> PayoutResult:
    """The `{"Result": {...}}` envelope of a B2C result or queue-timeout callback."""
    data = load_json(body)
    result = data.get("Result") if isinstance(data, dict) else None
    if not isinstance(result, dict):
        raise CallbackMalformed('expected {"Result": {...}}')
    originator = text_field(result, "OriginatorConversationID")
    conversation = text_field(result, "ConversationID")
    if not (originator or conversation):
        raise CallbackMalformed("OriginatorConversationID or ConversationID is required")
    if "ResultCode" not in result or isinstance(result["ResultCode"], bool | dict | list | None):
        raise CallbackMalformed("Result.ResultCode is required")
    values = result_parameters(result)
    code = str(result["ResultCode"]).strip()
    return PayoutResult(
        our_reference=originator,
        provider_reference=conversation,
        code=code,
        description=clean_desc(result.get("ResultDesc")),
        status=PaymentStatus.SUCCEEDED if code == SUCCESS else PaymentStatus.FAILED,
        receipt=text_field(result, "TransactionID") or str(values.get("TransactionReceipt") or ""),
        amount=parse_money(values.get("TransactionAmount")),
    )
