"""MTN MoMo's names for things: paths, callback kinds, the words of its status object and the failure reasons
(docs/providers/mtn.md, "Failure reasons"). The `status` word and the `reason` code are the contract; MTN's
message wording varies."""

import re

from payments.providers.base import PaymentStatus

# Products: each has its own subscription key, token and (optionally) API user.
COLLECTION = "collection"
DISBURSEMENT = "disbursement"

TOKEN_PATH = "{product}/token/"  # noqa: S105 (a URL path, not a secret); the trailing slash as MTN writes it
REQUEST_TO_PAY_PATH = "collection/v1_0/requesttopay"
TRANSFER_PATH = "disbursement/v1_0/transfer"
# v1_0 and v2_0 take the same body and headers (MTN-Group's PHP SDK); the status GET is v1_0 for both.
REFUND_PATH = "disbursement/v1_0/refund"

# Callback kinds (one per URL MTN calls).
COLLECTION_KIND = "collection"
DISBURSEMENT_KIND = "disbursement"
REMITTANCE_KIND = "remittance"
REFUND_KIND = "refund"

SANDBOX_TARGET_ENVIRONMENT = "sandbox"
SANDBOX_CURRENCY = "EUR"  # MTN's sandbox takes EUR only (anything else: INVALID_CURRENCY)
# The currencies MTN MoMo collects, by X-Target-Environment (docs/providers/mtn.md, "Environments"): the
# sandbox's EUR and each market's own; the last three are from third-party lists only.
MARKET_CURRENCIES = {
    SANDBOX_TARGET_ENVIRONMENT: SANDBOX_CURRENCY,
    "mtnuganda": "UGX",
    "mtnghana": "GHS",
    "mtnivorycoast": "XOF",
    "mtnzambia": "ZMW",
    "mtncameroon": "XAF",
    "mtnbenin": "XOF",
    "mtncongo": "XAF",
    "mtnswaziland": "SZL",
    "mtnguineaconakry": "GNF",
    "mtnsouthafrica": "ZAR",
    "mtnliberia": "LRD",
    "mtnsouthsudan": "SSP",
    "mtnnigeria": "NGN",
    "mtnrwanda": "RWF",
}
CURRENCIES = frozenset(MARKET_CURRENCIES.values())
# MTN_CURRENCY → the countries (ISO 3166 alpha-2) whose numbers MTN MoMo reaches with it; the sandbox's EUR
# takes MTN's test numbers of any country (46733123450).
# MTN's documented sandbox test numbers (docs/providers/mtn.md, "Sandbox test numbers"), honoured by the simulator
# in every target environment.
TEST_NUMBERS = frozenset(f"467331234{n}" for n in range(50, 64))
CURRENCY_REGIONS: dict[str, frozenset[str]] = {
    SANDBOX_CURRENCY: frozenset(),
    "UGX": frozenset({"UG"}),
    "GHS": frozenset({"GH"}),
    "XOF": frozenset({"CI", "BJ"}),
    "ZMW": frozenset({"ZM"}),
    "XAF": frozenset({"CM", "CG"}),
    "SZL": frozenset({"SZ"}),
    "GNF": frozenset({"GN"}),
    "ZAR": frozenset({"ZA"}),
    "LRD": frozenset({"LR"}),
    "SSP": frozenset({"SS"}),
    "NGN": frozenset({"NG"}),
    "RWF": frozenset({"RW"}),
}
SANDBOX_HOST = "sandbox.momodeveloper.mtn.com"
PRODUCTION_HOST = "proxy.momoapi.mtn.com"
LEGACY_HOSTS = ("ericssonbasicapi2.azure-api.net",)  # still the default of several libraries: retired

ACK = {"status": "accepted", "message": "Callback received"}

# payerMessage / payeeNote: at most 160 characters, no apostrophe and no "&" (both → 400), non-empty in
# production (else 500). Typographic apostrophes and backticks go too: they read as apostrophes to people.
MAX_TEXT = 160
FORBIDDEN_TEXT_RE = re.compile(r"['&\u2018\u2019`]")
SPACES_RE = re.compile(r"\s+")
MSISDN_RE = re.compile(r"\d{8,15}")  # E.164 digits without "+": country code first

# The status word of a request to pay, transfer or refund. FAILED is decided by its reason.
SUCCESSFUL = "SUCCESSFUL"
FAILED = "FAILED"
PENDING_WORDS = ("PENDING", "CREATED")  # CREATED: seen in the sandbox before PENDING/SUCCESSFUL

# 5xx answers to a money-moving POST are ambiguous (MTN may have created the transaction) except these: MTN
# checked the request and refused it before anything was created.
DEFINITE_REFUSALS = frozenset({"INVALID_CALLBACK_URL_HOST", "INVALID_CURRENCY", "NOT_ALLOWED_TARGET_ENVIRONMENT"})
CURRENCY_REFUSED_TEXT = "currency not supported"

# reason → (our status, the reason in plain words for the donor). Unknown reasons on a FAILED status are
# failures with the raw reason kept; the "still running" ones keep the payment pending.
REASONS: dict[str, tuple[PaymentStatus, str]] = {
    "NOT_ENOUGH_FUNDS": (PaymentStatus.FAILED, "There was not enough money in the MTN MoMo wallet."),
    "COULD_NOT_PERFORM_TRANSACTION": (PaymentStatus.EXPIRED, "The PIN was not entered in time."),
    "PAYER_NOT_FOUND": (PaymentStatus.FAILED, "This number has no MTN MoMo wallet."),
    "PAYEE_NOT_FOUND": (PaymentStatus.FAILED, "The receiving number has no MTN MoMo wallet."),
    "PAYER_LIMIT_REACHED": (PaymentStatus.FAILED, "The MTN MoMo wallet has reached its transaction limit."),
    "SENDER_ACCOUNT_NOT_ACTIVE": (PaymentStatus.FAILED, "The MTN MoMo wallet is not active."),
    "PAYEE_NOT_ALLOWED_TO_RECEIVE": (PaymentStatus.FAILED, "The receiving MTN MoMo wallet may not receive money."),
    "NOT_ALLOWED": (PaymentStatus.FAILED, "MTN MoMo did not allow this transaction."),
    "APPROVAL_REJECTED": (PaymentStatus.CANCELLED, "The payment was declined on the phone."),
    "PAYMENT_NOT_APPROVED": (PaymentStatus.CANCELLED, "The payment was not approved on the phone."),
    "TRANSACTION_CANCELED": (PaymentStatus.CANCELLED, "The payment was cancelled."),
    "EXPIRED": (PaymentStatus.EXPIRED, "The MTN MoMo request expired before it was approved."),
    "INTERNAL_PROCESSING_ERROR": (
        PaymentStatus.FAILED,
        "MTN MoMo could not complete the payment (most often: not enough money in the wallet).",
    ),
    "NOT_ALLOWED_TARGET_ENVIRONMENT": (PaymentStatus.FAILED, "MTN MoMo refused our account's configuration."),
    "INVALID_CALLBACK_URL_HOST": (PaymentStatus.FAILED, "MTN MoMo refused our account's configuration."),
    "INVALID_CURRENCY": (PaymentStatus.FAILED, "MTN MoMo does not take this currency here."),
    "SERVICE_UNAVAILABLE": (PaymentStatus.FAILED, "MTN MoMo was unavailable; please try again later."),
    "RESOURCE_NOT_FOUND": (PaymentStatus.FAILED, "MTN MoMo does not know this transaction."),
    "TRANSACTION_NOT_FOUND": (PaymentStatus.FAILED, "MTN MoMo does not know this transaction."),
    "RESOURCE_ALREADY_EXIST": (PaymentStatus.FAILED, "MTN MoMo already has a transaction with this id."),
    "ONGOING": (PaymentStatus.PENDING, "MTN MoMo is still processing the payment."),
    "PAYER_DELAYED": (PaymentStatus.PENDING, "MTN MoMo is still processing the payment."),
    "PAYEE_DELAYED": (PaymentStatus.PENDING, "MTN MoMo is still processing the payment."),
}
SUCCESS_TEXT = "The payment was received."
PENDING_TEXT = "The payer has not approved the payment yet."
NOT_VISIBLE_TEXT = "MTN MoMo does not show this request yet."
FAILED_WITHOUT_REASON = "MTN MoMo reports that the payment failed."


def status_for(status: str, reason: str = "") -> tuple[PaymentStatus, str]:
    """(our status, the donor's sentence) for MTN's status word and, on FAILED, its reason code."""
    word = (status or "").strip().upper()
    code = (reason or "").strip().upper()
    if word == SUCCESSFUL:
        return PaymentStatus.SUCCEEDED, SUCCESS_TEXT
    if word in PENDING_WORDS:
        return PaymentStatus.PENDING, PENDING_TEXT
    if word == FAILED:
        known = REASONS.get(code)
        if not code:
            return PaymentStatus.FAILED, FAILED_WITHOUT_REASON
        if known is None:
            return PaymentStatus.FAILED, f"{FAILED_WITHOUT_REASON} (MTN {code})"[:255]
        return known[0], f"{known[1]} (MTN {code})"
    # REJECTED/TIMEOUT appear only in some SDKs; anything else is a state we do not know: never a failure.
    return PaymentStatus.UNKNOWN, f"Unrecognised MTN MoMo status {word or '(none)'}."[:255]
