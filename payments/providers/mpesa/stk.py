"""M-Pesa Express (STK push): the PIN prompt, its callback, and the STK Push Query that decides.

Daraja signs nothing, so an STK callback is a trigger: the query confirms it before anything is credited.
The query has two "ask again later" answers (HTTP 500 "being processed", and ResultCode 4999).
Shapes and codes: docs/providers/mpesa.md.
"""

import logging
import re
from dataclasses import dataclass

from payments.providers.base import (
    CallbackMalformed,
    ChargeRequest,
    PaymentRef,
    PaymentStatus,
    ProviderError,
    ProviderResult,
    load_json_object,
    parse_money,
)
from payments.providers.http import response_object
from payments.providers.mpesa.client import DarajaClient, normalize_phone, refusal, stk_password
from payments.providers.mpesa.codes import (
    CURRENCY,
    MAX_ACCOUNT_REFERENCE,
    MAX_AMOUNT,
    PENDING_QUERY_TEXT,
    SAFE_TEXT_RE,
    reason,
    status_for_result_code,
)

logger = logging.getLogger("payments.mpesa")

STK_PUSH_PATH = "/mpesa/stkpush/v1/processrequest"
STK_QUERY_PATH = "/mpesa/stkpushquery/v1/query"


@dataclass(frozen=True)
class StkSettings:
    shortcode: str
    passkey: str
    transaction_type: str
    party_b: str  # PayBill: the paybill itself. Buy Goods: the till (the shortcode is the store number)
    transaction_desc: str
    callback_url_override: str  # MPESA_CALLBACK_URL; "{token}" in it receives the payment's secret


def account_reference(reference: str) -> str:
    """≤ 12 characters shown on the payer's phone: "DN123" from "RHCI-DN-123-20251219120000"."""
    match = re.search(r"DN-(\d+)-\d{14}(?:-(\d+))?$", reference)
    if match:
        short = f"DN{match[1]}" + (f"-{match[2]}" if match[2] else "")
        if len(short) <= MAX_ACCOUNT_REFERENCE:
            return short
    cleaned = SAFE_TEXT_RE.sub("", reference)
    return cleaned[-MAX_ACCOUNT_REFERENCE:] or "Donation"


def stk_push(client: DarajaClient, stk: StkSettings, charge: ChargeRequest) -> ProviderResult:
    if charge.currency != CURRENCY:
        raise ProviderError("M-Pesa collects Kenyan shillings (KES) only.", status_code=400)
    if charge.amount != charge.amount.to_integral_value():
        raise ProviderError(
            f"M-Pesa takes whole shillings only: KES {charge.amount} is not a whole amount.", status_code=400
        )
    amount = int(charge.amount)
    if amount < 1 or amount > MAX_AMOUNT:
        raise ProviderError(f"M-Pesa takes KES 1 to {MAX_AMOUNT:,} per payment.", status_code=400)
    phone = normalize_phone(charge.msisdn)
    timestamp = client.timestamp()
    body = {
        "BusinessShortCode": stk.shortcode,
        "Password": stk_password(stk.shortcode, stk.passkey, timestamp),
        "Timestamp": timestamp,
        "TransactionType": stk.transaction_type,
        "Amount": amount,
        "PartyA": phone,
        "PartyB": stk.party_b,
        "PhoneNumber": phone,
        "CallBackURL": callback_url(stk, charge.callback_url),
        "AccountReference": (charge.extra.get("account_reference") or account_reference(charge.reference))[
            :MAX_ACCOUNT_REFERENCE
        ],
        "TransactionDesc": stk.transaction_desc,
    }
    # A POST that moves money: sent once, never retried automatically (a retry could prompt twice).
    response = client.api.request("POST", STK_PUSH_PATH, json=body, headers=client.headers(), moves_money=True)
    payload = response_object(response)
    checkout_id = payload.get("CheckoutRequestID")
    if response.status_code != 200 or str(payload.get("ResponseCode", "")).strip() != "0" or not checkout_id:
        client.forget_token_if_refused(payload)
        logger.warning(
            "M-Pesa STK push for %s refused: HTTP %s %s %s",
            charge.reference,
            response.status_code,
            payload.get("errorCode", payload.get("ResponseCode", "")),
            payload.get("errorMessage", payload.get("ResponseDescription", "")),
        )
        raise ProviderError(
            refusal(payload, "M-Pesa did not send the payment prompt."), status_code=response.status_code
        )
    return ProviderResult(
        status=PaymentStatus.PENDING,
        provider_reference=str(checkout_id),
        our_reference=charge.reference,
        amount=charge.amount,
        currency=CURRENCY,
        message=str(payload.get("CustomerMessage") or payload.get("ResponseDescription") or ""),
    )


def callback_url(stk: StkSettings, given: str) -> str:
    """MPESA_CALLBACK_URL overrides the site's URL; "{token}" in it receives the payment's token."""
    if not stk.callback_url_override:
        return given
    token = given.rstrip("/").rsplit("/", 1)[-1] if given else ""
    return stk.callback_url_override.replace("{token}", token)


def stk_query(client: DarajaClient, stk: StkSettings, ref: PaymentRef) -> ProviderResult:
    if not ref.provider_reference:
        return ProviderResult(
            status=PaymentStatus.UNKNOWN,
            message="No M-Pesa CheckoutRequestID to ask about yet.",
        )
    timestamp = client.timestamp()
    body = {
        "BusinessShortCode": stk.shortcode,
        "Password": stk_password(stk.shortcode, stk.passkey, timestamp),
        "Timestamp": timestamp,
        "CheckoutRequestID": ref.provider_reference,
    }
    response = client.api.request("POST", STK_QUERY_PATH, json=body, headers=client.headers())
    payload = response_object(response)
    error_message = str(payload.get("errorMessage") or "")
    if PENDING_QUERY_TEXT in error_message.lower():
        # HTTP 500 "The transaction is being processed": the prompt is still open.
        return ProviderResult(
            status=PaymentStatus.PENDING,
            provider_reference=ref.provider_reference,
            currency=CURRENCY,
            message=error_message,
        )
    if response.status_code != 200 or "ResultCode" not in payload:
        client.forget_token_if_refused(payload)
        if response.status_code == 200 and str(payload.get("ResponseCode", "")).strip() == "0":
            return ProviderResult(
                status=PaymentStatus.PENDING, provider_reference=ref.provider_reference, currency=CURRENCY
            )
        raise ProviderError(
            refusal(payload, "M-Pesa did not answer the status query."),
            retryable=response.status_code >= 500,
            status_code=response.status_code,
        )
    code = str(payload.get("ResultCode")).strip()
    status, default = status_for_result_code(code)
    return ProviderResult(
        status=status,
        provider_reference=str(payload.get("CheckoutRequestID") or ref.provider_reference),
        currency=CURRENCY,
        message=reason(code, payload.get("ResultDesc"), default),
    )


def parse_stk_callback(body: bytes) -> ProviderResult:
    callback = _stk_callback(body)
    checkout_id = callback.get("CheckoutRequestID")
    if not isinstance(checkout_id, str) or not checkout_id.strip():
        raise CallbackMalformed("Body.stkCallback.CheckoutRequestID is required")
    if "ResultCode" not in callback or isinstance(callback["ResultCode"], bool | dict | list | None):
        raise CallbackMalformed("Body.stkCallback.ResultCode is required")
    code = str(callback["ResultCode"]).strip()
    status, default = status_for_result_code(code)
    if status == PaymentStatus.PENDING:
        status = PaymentStatus.UNKNOWN  # a callback is a final word; 4999 in one is not a state we know
    items = _metadata(callback.get("CallbackMetadata"))
    amount = parse_money(items.get("Amount"))
    if status == PaymentStatus.SUCCEEDED and amount is None:
        raise CallbackMalformed("a successful STK callback must carry CallbackMetadata Amount")
    phone = items.get("PhoneNumber")
    return ProviderResult(
        status=status,
        provider_reference=checkout_id.strip(),
        amount=amount,
        currency=CURRENCY,
        receipt=str(items.get("MpesaReceiptNumber") or ""),
        msisdn=str(phone) if phone not in (None, "") else "",
        message=reason(code, callback.get("ResultDesc"), default),
    )


def _stk_callback(body: bytes) -> dict:
    data = load_json_object(body)
    outer = data.get("Body")
    callback = outer.get("stkCallback") if isinstance(outer, dict) else None
    if not isinstance(callback, dict):
        raise CallbackMalformed('expected {"Body": {"stkCallback": {...}}}')
    return callback


def _metadata(metadata: object) -> dict[str, object]:
    """CallbackMetadata.Item as a dict; tolerant of a single object instead of a list and of missing Values."""
    if metadata in (None, ""):
        return {}
    if not isinstance(metadata, dict):
        raise CallbackMalformed("CallbackMetadata must be an object")
    items = metadata.get("Item")
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise CallbackMalformed("CallbackMetadata.Item must be a list")
    found: dict[str, object] = {}
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("Name"), str) and "Value" in item:
            found[item["Name"]] = item["Value"]  # `Balance` often comes without a Value: skipped
    return found
