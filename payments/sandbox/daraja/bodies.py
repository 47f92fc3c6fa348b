"""Daraja's callback bodies and STK password, as pure functions of values: bytes and dicts, no HTTP, no ORM.

One builder per body, shared by the simulator (which delivers them), `manage.py simulate_callback`, the fault
harness and the tests, so that a shape fixed here (docs/providers/mpesa.md) is fixed everywhere at once.
"""

import base64
import hashlib
import random
import secrets
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from payments.sandbox.outcomes import Result

NAIROBI = ZoneInfo("Africa/Nairobi")

# (ResultCode, callback ResultDesc, query ResultDesc): wording differs between the two (docs/providers/mpesa.md).
RESULT_CODES: dict[Result, tuple[int, str, str]] = {
    Result.SUCCESS: (
        0,
        "The service request is processed successfully.",
        "The service request is processed successfully.",
    ),
    Result.INSUFFICIENT_FUNDS: (
        1,
        "The balance is insufficient for the transaction.",
        "The balance is insufficient for the transaction.",
    ),
    Result.CANCELLED: (1032, "Request cancelled by user", "Request cancelled by user"),
    Result.TIMEOUT: (1037, "DS timeout user cannot be reached", "DS timeout user cannot be reached."),
    Result.DECLINED: (2001, "The initiator information is invalid.", "The initiator information is invalid."),
    Result.FAILED: (2001, "The initiator information is invalid.", "The initiator information is invalid."),
}
PENDING_500 = "The transaction is being processed"
PENDING_4999 = "The transaction is still under processing"
QUERY_ACCEPTED = "The service request has been accepted successsfully"  # sic: Daraja's spelling
REVERSAL_RESULTS = {
    "0": "The service request is processed successfully.",
    "R000001": "The transaction has already been reversed",
    "R000002": "The OriginalTransactionID is invalid",
}
B2C_RESULTS = {  # label → (ResultCode, ResultDesc)
    "success": (0, "The service request is processed successfully."),
    "timeout": (1, "The service request has timed out."),
    "insufficient_funds": (1, "The balance is insufficient for the transaction."),
}


def timestamp(moment: datetime | None = None) -> str:
    """Daraja's YYYYMMDDHHMMSS in Nairobi time (TransTime, TransactionDate, the STK Timestamp)."""
    return (moment or datetime.now(NAIROBI)).astimezone(NAIROBI).strftime("%Y%m%d%H%M%S")


def stk_password(shortcode: str, passkey: str, stamp: str) -> str:
    """The STK push and query `Password`: Base64(shortcode + passkey + Timestamp)."""
    return base64.b64encode(f"{shortcode}{passkey}{stamp}".encode()).decode()


def new_receipt(rng: random.Random | None = None) -> str:
    """An M-Pesa receipt / TransID such as RKL51ZDR4F (10 upper-case letters and digits)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join((rng or random).choice(alphabet) for _ in range(10))


def new_conversation_id() -> str:
    return f"{secrets.token_hex(2)}-{secrets.token_hex(2)}-{secrets.token_hex(12)}"


def new_checkout_request_id() -> str:
    return f"ws_CO_{datetime.now(NAIROBI):%d%m%Y%H%M%S}{secrets.randbelow(10**9):09d}"


def build_stk_callback(
    *,
    merchant_request_id: str,
    checkout_request_id: str,
    result_code: int,
    result_desc: str,
    amount: int | float | None = None,
    receipt: str = "",
    phone: str = "",
    transaction_date: str = "",
    with_balance: bool = True,
) -> dict[str, Any]:
    """The STK callback body (docs/providers/mpesa.md): metadata only on success, `Balance` without `Value`."""
    callback: dict[str, Any] = {
        "MerchantRequestID": merchant_request_id,
        "CheckoutRequestID": checkout_request_id,
        "ResultCode": result_code,
        "ResultDesc": result_desc,
    }
    if result_code == 0:
        items: list[dict[str, Any]] = [
            {"Name": "Amount", "Value": float(amount or 0)},
            {"Name": "MpesaReceiptNumber", "Value": receipt},
            {"Name": "Balance"},
            {"Name": "TransactionDate", "Value": int(transaction_date)},
            {"Name": "PhoneNumber", "Value": int(phone)},
        ]
        callback["CallbackMetadata"] = {"Item": items if with_balance else [i for i in items if "Value" in i]}
    return {"Body": {"stkCallback": callback}}


def stk_query_answer(
    *, merchant_request_id: str, checkout_request_id: str, result: Result | None
) -> tuple[int, dict[str, Any]]:
    """STK Push Query's (HTTP status, body); result None: still pending, the HTTP 200 ResultCode 4999 answer."""
    if result is None:
        code, desc = "4999", PENDING_4999
    else:
        number, _, desc = RESULT_CODES[result]
        code = str(number)
    return 200, {
        "ResponseCode": "0",
        "ResponseDescription": QUERY_ACCEPTED,
        "MerchantRequestID": merchant_request_id,
        "CheckoutRequestID": checkout_request_id,
        "ResultCode": code,
        "ResultDesc": desc,
    }


def stk_query_pending_500(checkout_request_id: str) -> tuple[int, dict[str, Any]]:
    """The other pending answer of STK Push Query: HTTP 500 "The transaction is being processed"."""
    return 500, {"requestId": checkout_request_id, "errorCode": "500.001.1001", "errorMessage": PENDING_500}


def c2b_body(
    *,
    trans_id: str,
    amount: int | str,
    shortcode: str,
    bill_ref: str,
    msisdn: str,
    paybill: bool = True,
    trans_time: str = "",
    first_name: str = "JOHN",
    last_name: str = "DOE",
    hash_msisdn: bool = True,
    balance: str = "",
) -> dict[str, Any]:
    """A C2B validation (balance "") or confirmation body. Since July 2024 Daraja sends a 64-character hex hash of
    the payer's number as MSISDN (hash_msisdn; otherwise `msisdn` as given, e.g. the older masked form)."""
    return {
        "TransactionType": "Pay Bill" if paybill else "Buy Goods",
        "TransID": trans_id,
        "TransTime": trans_time or timestamp(),
        "TransAmount": f"{amount}.00" if isinstance(amount, int) else amount,
        "BusinessShortCode": shortcode,
        "BillRefNumber": bill_ref,
        "InvoiceNumber": "",
        "OrgAccountBalance": balance,
        "ThirdPartyTransID": "",
        "MSISDN": hashlib.sha256(msisdn.encode()).hexdigest() if hash_msisdn else msisdn,
        "FirstName": first_name,
        "MiddleName": "",
        "LastName": last_name,
    }


def b2c_result(
    *,
    originator_conversation_id: str,
    conversation_id: str,
    receipt: str,
    label: str = "success",
    amount: int = 0,
    receiver: str = "",
    timeout_url: str | None = None,
) -> dict[str, Any]:
    """The B2C `{"Result": {...}}` envelope at the ResultURL (label "success" or "insufficient_funds") or the
    QueueTimeOutURL ("timeout"). `receiver`: ReceiverPartyPublicName ("2547… - NAME")."""
    code, desc = B2C_RESULTS[label]
    reference_item: dict[str, Any] = {"Key": "QueueTimeoutURL"}
    if timeout_url is not None:
        reference_item["Value"] = timeout_url
    result: dict[str, Any] = {
        "ResultType": 0,
        "ResultCode": code,
        "ResultDesc": desc,
        "OriginatorConversationID": originator_conversation_id,
        "ConversationID": conversation_id,
        "TransactionID": receipt,
        "ReferenceData": {"ReferenceItem": reference_item},
    }
    if label == "success":
        result["ResultParameters"] = {
            "ResultParameter": [
                {"Key": "TransactionAmount", "Value": amount},
                {"Key": "TransactionReceipt", "Value": receipt},
                {"Key": "ReceiverPartyPublicName", "Value": receiver},
                {"Key": "B2CRecipientIsRegisteredCustomer", "Value": "Y"},
            ]
        }
    return {"Result": result}


def reversal_result(
    *, code: str, conversation_id: str, receipt: str, original: str, amount: int, completed: str = ""
) -> dict[str, Any]:
    """The Transaction Reversal result: "0" reversed, "R000001" already reversed, "R000002" no such transaction."""
    result: dict[str, Any] = {
        "ResultType": 0,
        "ResultCode": code if code != "0" else 0,
        "ResultDesc": REVERSAL_RESULTS[code],
        "OriginatorConversationID": new_conversation_id(),
        "ConversationID": conversation_id,
        "TransactionID": receipt,
    }
    if code == "0":
        result["ResultParameters"] = {
            "ResultParameter": [
                {"Key": "Amount", "Value": amount},
                {"Key": "OriginalTransactionID", "Value": original},
                {"Key": "TransCompletedTime", "Value": completed or timestamp()},
            ]
        }
    return {"Result": result}
