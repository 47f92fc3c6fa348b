"""Airtel Money's names for things: paths, callback kinds, transaction states and the ESB / DP codes
(docs/providers/airtel.md, "Codes"). The transaction state (`TS`, `TF`, …) decides; the envelope's
`status.success` does not (Airtel's own examples show `false` on a success)."""

import re

from payments.providers.base import PaymentStatus

TOKEN_PATH = "/auth/oauth2/token"  # noqa: S105 (a URL path, not a secret)
DEFAULT_COLLECTION_PATH = "/merchant/v1/payments/"  # or /merchant/v2/payments/ (AIRTEL_COLLECTION_PATH)
ENQUIRY_PATH = "/standard/v1/payments/{id}"
REFUND_PATH = "/standard/v1/payments/refund"
DISBURSEMENT_PATH = "/standard/v1/disbursements/"
DISBURSEMENT_ENQUIRY_PATH = "/standard/v1/disbursements/{id}"
ENCRYPTION_KEYS_PATH = "/v1/rsa/encryption-keys"
UAT_HOST_MARK = "openapiuat."  # openapiuat.airtel.africa and the country UAT hosts

# Callback kinds (one per URL). Airtel documents only the collection callback, configured once per app on its
# portal; the other two paths exist for the public contract (docs/api.md, "Provider callbacks").
PAYMENT_KIND = "payment"
DISBURSEMENT_KIND = "disbursement"
NOTIFICATION_KIND = "notification"
ACK = {"status": {"code": "200", "message": "Callback received successfully", "success": True}}
SECRET_FIELDS = ("hash",)

# Transaction states (`data.transaction.status` of an enquiry, `status_code` of a callback).
SUCCESS = "TS"
FAILURE = "TF"
AMBIGUOUS = "TA"
IN_PROGRESS = "TIP"
PENDING_STATES = frozenset({AMBIGUOUS, IN_PROGRESS, "TI", "DP"})  # TI: seen in production; DP: one document

# `status.result_code` (ESB) and `status.response_code` (DP…) of the envelope.
ESB_SUCCESS = "ESB000010"
ESB_DUPLICATE_ID = "ESB000041"
ESB_NOT_FOUND = "ESB000045"
ESB_CODES = {
    "ESB000001": "Something went wrong.",
    "ESB000004": "An error occurred while initiating the payment.",
    "ESB000008": "Field validation failed.",
    "ESB000010": "Success.",
    "ESB000011": "Failed.",
    "ESB000014": "An error occurred while fetching the transaction status.",
    "ESB000033": "Invalid MSISDN length.",
    "ESB000034": "Invalid country.",
    "ESB000035": "Invalid currency.",
    "ESB000036": "Invalid MSISDN length or format.",
    "ESB000039": "The merchant is not configured for this country.",
    "ESB000041": "The transaction id was used before.",
    "ESB000045": "No transaction with this id.",
}
COLLECTION_AMBIGUOUS = "DP00800001000"
COLLECTION_SUCCESS = "DP00800001001"
COLLECTION_IN_PROCESS = "DP00800001006"
COLLECTION_NOT_FOUND = "DP00800001025"
COLLECTION_FORBIDDEN = "DP00800001026"
# A collection's response code on a failed transaction → (our status, the reason for the donor).
COLLECTION_FAILURES: dict[str, tuple[PaymentStatus, str]] = {
    "DP00800001002": (PaymentStatus.FAILED, "A wrong Airtel Money PIN was entered."),
    "DP00800001003": (PaymentStatus.FAILED, "The Airtel Money wallet's transaction limit would be exceeded."),
    "DP00800001004": (PaymentStatus.FAILED, "Airtel Money refused the amount."),
    "DP00800001005": (PaymentStatus.EXPIRED, "The Airtel Money PIN was not entered."),
    "DP00800001007": (PaymentStatus.FAILED, "There was not enough money in the Airtel Money wallet."),
    "DP00800001008": (PaymentStatus.FAILED, "Airtel Money refused the transaction."),
    "DP00800001009": (PaymentStatus.FAILED, "Airtel Money declined the transaction."),
    "DP00800001010": (PaymentStatus.FAILED, "This number may not make Airtel Money payments to us."),
    "DP00800001024": (PaymentStatus.EXPIRED, "The Airtel Money prompt timed out."),
    "DP00800001029": (PaymentStatus.EXPIRED, "The Airtel Money request expired."),
}
DISBURSEMENT_AMBIGUOUS = "DP00900001000"
DISBURSEMENT_SUCCESS = "DP00900001001"
DISBURSEMENT_PROCESSING = "DP00900001006"
# Answers to a disbursement after which money may have moved: never re-sent, the enquiry decides.
DISBURSEMENT_UNSETTLED = frozenset(
    {
        DISBURSEMENT_AMBIGUOUS,
        "DP00900001011",  # "similar transaction exists": one with this id was received before
        "DP00900001014",  # timed out: "to know the exact status please do the transaction enquiry"
        "DP00900001017",  # duplicate transaction id
    }
)
DISBURSEMENT_CODES = {
    "DP00900001000": "Ambiguous: Airtel is still processing it.",
    "DP00900001001": "Paid.",
    "DP00900001003": "The daily transaction limit was reached.",
    "DP00900001004": "Airtel Money refused the amount.",
    "DP00900001005": "The transaction failed.",
    "DP00900001006": "Airtel is processing it.",
    "DP00900001007": "Not enough money in the disbursement wallet.",
    "DP00900001009": "Invalid initiatee.",
    "DP00900001010": "The payer is not an allowed user.",
    "DP00900001011": "A similar transaction exists.",
    "DP00900001012": "The receiving number is not valid.",
    "DP00900001013": "Airtel Money refused it (country, currency or parameters).",
    "DP00900001014": "Timed out: Airtel may or may not have paid it.",
    "DP00900001015": "Not found.",
    "DP00900001016": "Forbidden: the signature did not match.",
    "DP00900001017": "The transaction id was used before.",
}

# Our ids in `transaction.id`: Airtel's disbursement API wants "alphanumeric characters with length between 5
# and 80" (global-121's production Zambia integration); our Payment.external_id holds 64.
ID_MIN = 5
ID_MAX = 64
NOT_ALPHANUMERIC_RE = re.compile(r"[^A-Za-z0-9]")

PKCS1 = "pkcs1"
OAEP = "oaep"
# Airtel Africa's markets (ISO 3166 alpha-2) → the currencies Airtel Money takes there (ISO 4217): its 14
# operating companies. The Congolese (CD) wallets hold francs or US dollars.
MARKETS: dict[str, tuple[str, ...]] = {
    "CD": ("CDF", "USD"),
    "CG": ("XAF",),
    "GA": ("XAF",),
    "KE": ("KES",),
    "MG": ("MGA",),
    "MW": ("MWK",),
    "NE": ("XOF",),
    "NG": ("NGN",),
    "RW": ("RWF",),
    "SC": ("SCR",),
    "TD": ("XAF",),
    "TZ": ("TZS",),
    "UG": ("UGX",),
    "ZM": ("ZMW",),
}
PIN_PADDINGS = (PKCS1, OAEP)
# AIRTEL_PIN_PADDING as operators write it (case, "-", "_", "#" and "." ignored) → ours.
PIN_PADDING_ALIASES = {"pkcs1": PKCS1, "pkcs1v15": PKCS1, "pkcs1v1": PKCS1, "oaep": OAEP, "oaepsha1": OAEP}


def pin_padding(value: str) -> str | None:
    """ "pkcs1" or "oaep" for a setting such as "PKCS1v15", "pkcs#1 v1.5" or "OAEP"; None when it is neither."""
    return PIN_PADDING_ALIASES.get(NOT_ALPHANUMERIC_RE.sub("", value or PKCS1).lower())


def status_for_state(state: str, response_code: str = "", message: str = "") -> tuple[PaymentStatus, str]:
    """(status, reason) of a transaction state; a failure is refined by its response code or its words."""
    state = (state or "").strip().upper()
    if state == SUCCESS:
        return PaymentStatus.SUCCEEDED, message or "The Airtel Money payment was received."
    if state in PENDING_STATES:
        return PaymentStatus.PENDING, message or "The payer has not approved the Airtel Money prompt yet."
    if state == FAILURE:
        status, reason = COLLECTION_FAILURES.get(response_code, (PaymentStatus.FAILED, ""))
        if "cancel" in message.lower():
            status = PaymentStatus.CANCELLED
        return status, message or reason or "The Airtel Money payment failed."
    # TU and anything unrecognised: never a failure on a guess; the enquiry is asked again.
    return PaymentStatus.UNKNOWN, f"Unrecognised Airtel Money state {state or '(none)'}."
