"""Daraja's codes and limits. The ResultCode is the contract; ResultDesc wording varies."""

import re

from payments.providers.base import PaymentStatus

CURRENCY = "KES"
PAYBILL = "CustomerPayBillOnline"
BUY_GOODS = "CustomerBuyGoodsOnline"
TRANSACTION_TYPES = (PAYBILL, BUY_GOODS)
# Callback kinds (one per URL Daraja calls).
STK_KIND = "stkpush"
C2B_VALIDATION = "c2b_validation"
C2B_CONFIRMATION = "c2b_confirmation"
C2B_KINDS = (C2B_VALIDATION, C2B_CONFIRMATION)
B2C_RESULT = "b2c_result"
B2C_TIMEOUT = "b2c_timeout"
B2C_KINDS = (B2C_RESULT, B2C_TIMEOUT)
REVERSAL_RESULT = "reversal_result"
REVERSAL_TIMEOUT = "reversal_timeout"
BALANCE_RESULT = "balance_result"
BALANCE_TIMEOUT = "balance_timeout"
PULL_NOTICE = "pull_notice"  # the Pull API's registered CallBackURL: stored, nothing to apply
# The initiator's callbacks (payouts, reversals, balance results) share one secret: MPESA_B2C_TOKEN.
INITIATOR_KINDS = (*B2C_KINDS, REVERSAL_RESULT, REVERSAL_TIMEOUT, BALANCE_RESULT, BALANCE_TIMEOUT)
C2B_RESPONSE_TYPES = ("Completed", "Cancelled")
# Daraja refuses C2B URLs containing these words, in any case.
C2B_FORBIDDEN_URL_WORDS = ("mpesa", "m-pesa", "safaricom", "exe", "exec", "cmd", "sql", "query")
MAX_ACCOUNT_REFERENCE = 12
MAX_TRANSACTION_DESC = 13
MAX_AMOUNT = 250_000  # per transaction (Daraja's FAQ)
MSISDN_RE = re.compile(r"254[17]\d{8}")
SAFE_TEXT_RE = re.compile(r"[^A-Za-z0-9 .-]")  # `@ # &` in these fields can fail silently
RESULT_DESC_PREFIX_RE = re.compile(r"^\[[^\]]*\]\s*")  # "[STK_CB - ]Request cancelled by user"
PENDING_QUERY_TEXT = "being processed"
STILL_PROCESSING = "4999"
TOKEN_ERROR_CODES = ("404.001.03", "400.003.01", "401.002.01")
ACCEPTED = {"ResultCode": 0, "ResultDesc": "Accepted"}

# Unknown codes are UNKNOWN: the payment stays pending and is asked about again, never failed on a guess.
RESULT_CODES: dict[str, tuple[PaymentStatus, str]] = {
    "0": (PaymentStatus.SUCCEEDED, "The payment was received."),
    "1": (PaymentStatus.FAILED, "Insufficient M-Pesa balance for the transaction."),
    "2": (PaymentStatus.FAILED, "Declined: the amount is below the M-Pesa minimum."),
    "3": (PaymentStatus.FAILED, "Declined: the amount is above the M-Pesa maximum."),
    "4": (PaymentStatus.FAILED, "Declined: the payer's daily M-Pesa limit would be exceeded."),
    "8": (PaymentStatus.FAILED, "Declined: the payer's maximum M-Pesa balance would be exceeded."),
    "17": (PaymentStatus.FAILED, "Declined: the same amount was sent from this phone within 2 minutes."),
    "26": (PaymentStatus.FAILED, "M-Pesa was busy; try again in a minute."),
    "1001": (PaymentStatus.FAILED, "Another M-Pesa transaction is in progress on this phone; try again shortly."),
    "1019": (PaymentStatus.EXPIRED, "The M-Pesa request expired."),
    "1025": (PaymentStatus.FAILED, "M-Pesa could not send the prompt."),
    "1032": (PaymentStatus.CANCELLED, "The payment was cancelled on the phone."),
    "1036": (PaymentStatus.EXPIRED, "The phone did not acknowledge the M-Pesa prompt."),
    "1037": (PaymentStatus.EXPIRED, "No answer from the phone: it may be off or out of reach."),
    "2001": (PaymentStatus.FAILED, "Wrong M-Pesa PIN entered."),
    "2028": (PaymentStatus.FAILED, "M-Pesa refused the request (shortcode or transaction type misconfigured)."),
    "8006": (PaymentStatus.FAILED, "M-Pesa security credential is locked."),
    "9999": (PaymentStatus.FAILED, "M-Pesa could not send the prompt."),
    "SFC_IC0003": (PaymentStatus.FAILED, "M-Pesa refused the request (unknown operator or shortcode)."),
    STILL_PROCESSING: (PaymentStatus.PENDING, "The payer has not answered yet."),
}


def status_for_result_code(code: object) -> tuple[PaymentStatus, str]:
    """(status, default reason) for a Daraja ResultCode given as int or string."""
    return RESULT_CODES.get(str(code).strip(), (PaymentStatus.UNKNOWN, f"Unrecognised M-Pesa result {code}."))


def clean_desc(text: object) -> str:
    return RESULT_DESC_PREFIX_RE.sub("", str(text or "")).strip()


def reason(code: str, desc: object, default: str) -> str:
    text = clean_desc(desc) or default
    return f"{text} (M-Pesa {code})"[:255]
