"""Safaricom M-Pesa Daraja (Kenya): STK push (M-Pesa Express), its callback and the STK Push Query.

Facts and their sources: shared/providers/azampay-and-daraja.md, Part B (B.2–B.6, B.11–B.13). Daraja signs
nothing: a callback only proves that someone knew the URL. So a callback is a trigger, never the truth: by
default every STK callback is confirmed with the STK Push Query before anything is credited
(`MPESA_TRUST_CALLBACKS`, off by default). The source IP is a soft signal (logged), decisive only when
`MPESA_IP_ALLOWLIST_STRICT` is on.
"""

import base64
import ipaddress
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from payments.providers.base import (
    CallbackMalformed,
    CallbackTrust,
    ChargeRequest,
    PaymentProvider,
    PaymentRef,
    PaymentStatus,
    ProviderError,
    ProviderResult,
    RawCallback,
    UrlToken,
    load_json,
    load_json_object,
    parse_money,
)
from payments.providers.http import ProviderHttpClient, response_object
from payments.providers.tokens import TokenCache

logger = logging.getLogger("payments.mpesa")

NAIROBI = ZoneInfo("Africa/Nairobi")
PAYBILL = "CustomerPayBillOnline"
BUY_GOODS = "CustomerBuyGoodsOnline"
TRANSACTION_TYPES = (PAYBILL, BUY_GOODS)
STK_KIND = "stkpush"
C2B_VALIDATION = "c2b_validation"
C2B_CONFIRMATION = "c2b_confirmation"
C2B_KINDS = (C2B_VALIDATION, C2B_CONFIRMATION)
B2C_RESULT = "b2c_result"
B2C_TIMEOUT = "b2c_timeout"
B2C_KINDS = (B2C_RESULT, B2C_TIMEOUT)
B2C_PATH = "/mpesa/b2c/v3/paymentrequest"
C2B_REGISTER_PATH = "/mpesa/c2b/v2/registerurl"
C2B_RESPONSE_TYPES = ("Completed", "Cancelled")
# Daraja refuses C2B URLs containing these words, in any case (notes B.7).
C2B_FORBIDDEN_URL_WORDS = ("mpesa", "m-pesa", "safaricom", "exe", "exec", "cmd", "sql", "query")
TOKEN_PATH = "/oauth/v1/generate"  # noqa: S105 (a URL path, not a secret)
STK_PUSH_PATH = "/mpesa/stkpush/v1/processrequest"
STK_QUERY_PATH = "/mpesa/stkpushquery/v1/query"
# Tokens last 3600 s; refresh at about 50 min (notes B.2) so a request never carries an expiring one.
TOKEN_REFRESH_MARGIN_SECONDS = 600
DEFAULT_TOKEN_LIFETIME_SECONDS = 3599
MAX_ACCOUNT_REFERENCE = 12
MAX_TRANSACTION_DESC = 13
MAX_AMOUNT = 250_000  # per transaction (Daraja FAQ, notes B.3)
MSISDN_RE = re.compile(r"254[17]\d{8}")
SAFE_TEXT_RE = re.compile(r"[^A-Za-z0-9 .-]")  # `@ # &` in these fields can fail silently (notes B.13 #3)
RESULT_DESC_PREFIX_RE = re.compile(r"^\[[^\]]*\]\s*")  # "[STK_CB - ]Request cancelled by user"
PENDING_QUERY_TEXT = "being processed"
STILL_PROCESSING = "4999"

# The ResultCode is the contract; ResultDesc wording varies (notes B.5). Unknown codes are UNKNOWN: the
# payment stays pending and is asked about again, never failed on a guess.
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


@dataclass(frozen=True)
class C2BPayment:
    """A C2B validation or confirmation body (notes B.7), typed. The MSISDN is masked as Safaricom sent it."""

    trans_id: str
    trans_time: str
    amount: Decimal
    shortcode: str
    bill_ref: str
    transaction_type: str = ""
    msisdn: str = ""
    payer_name: str = ""
    invoice_number: str = ""
    third_party_trans_id: str = ""


def status_for_result_code(code: object) -> tuple[PaymentStatus, str]:
    """(status, default reason) for a Daraja ResultCode given as int or string."""
    return RESULT_CODES.get(str(code).strip(), (PaymentStatus.UNKNOWN, f"Unrecognised M-Pesa result {code}."))


def normalize_phone(msisdn: str) -> str:
    """Any Kenyan way of writing a Safaricom number → 2547XXXXXXXX / 2541XXXXXXXX, or ProviderError."""
    digits = "".join(ch for ch in str(msisdn or "") if ch.isdigit())
    if digits.startswith("0") and len(digits) == 10:
        digits = "254" + digits[1:]
    elif len(digits) == 9 and digits[0] in "17":
        digits = "254" + digits
    if not MSISDN_RE.fullmatch(digits):
        raise ProviderError("M-Pesa needs a Kenyan mobile number such as 0712 345 678 (2547… or 2541…).")
    return digits


def stk_password(shortcode: str, passkey: str, timestamp: str) -> str:
    return base64.b64encode(f"{shortcode}{passkey}{timestamp}".encode()).decode()


def account_reference(reference: str) -> str:
    """≤ 12 characters shown on the payer's phone: "DN123" from "RHCI-DN-123-20251219120000"."""
    match = re.search(r"DN-(\d+)-\d{14}(?:-(\d+))?$", reference)
    if match:
        short = f"DN{match[1]}" + (f"-{match[2]}" if match[2] else "")
        if len(short) <= MAX_ACCOUNT_REFERENCE:
            return short
    cleaned = SAFE_TEXT_RE.sub("", reference)
    return cleaned[-MAX_ACCOUNT_REFERENCE:] or "Donation"


def clean_desc(text: str) -> str:
    return RESULT_DESC_PREFIX_RE.sub("", str(text or "")).strip()


class MpesaProvider(PaymentProvider):
    code = "mpesa"
    display_name = "M-Pesa"
    currencies = frozenset({"KES"})
    whole_amounts_only = True
    channels = ()
    callback_path_template = "/webhooks/mpesa/stkpush/{token}/"

    def __init__(
        self,
        *,
        consumer_key: str,
        consumer_secret: str,
        shortcode: str,
        passkey: str,
        api_url: str,
        transaction_type: str = PAYBILL,
        party_b: str = "",
        callback_url: str = "",
        trust_callbacks: bool = False,
        allowed_ips: Iterable[str] = (),
        ip_allowlist_strict: bool = False,
        transaction_desc: str = "Donation",
        c2b_shortcode: str = "",
        c2b_token: str = "",
        b2c_shortcode: str = "",
        b2c_token: str = "",
        initiator_name: str = "",
        security_credential: str = "",
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ):
        if transaction_type not in TRANSACTION_TYPES:
            raise ValueError(f"MPESA_TRANSACTION_TYPE must be one of {', '.join(TRANSACTION_TYPES)}")
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.shortcode = str(shortcode)
        self.passkey = passkey
        self.transaction_type = transaction_type
        # PayBill: PartyB is the paybill itself. Buy Goods: the shortcode is the store number, PartyB the till.
        self.party_b = str(party_b or shortcode)
        self.callback_url_override = callback_url.strip()
        self.trust_callbacks = trust_callbacks
        self.allowed_networks = tuple(_network(ip) for ip in allowed_ips if str(ip).strip())
        self.ip_allowlist_strict = ip_allowlist_strict
        self.c2b_shortcode = str(c2b_shortcode or shortcode)
        self.c2b_token = c2b_token
        self.b2c_shortcode = str(b2c_shortcode or shortcode)
        self.b2c_token = b2c_token
        self.initiator_name = initiator_name
        self.security_credential = security_credential
        self.transaction_desc = SAFE_TEXT_RE.sub("", transaction_desc)[:MAX_TRANSACTION_DESC] or "Donation"
        self.api = ProviderHttpClient(
            base_url=api_url, provider="M-Pesa", connect_timeout=connect_timeout, read_timeout=read_timeout
        )
        self.tokens = TokenCache(f"mpesa:token:{self.api.base_url}:{consumer_key}")

    # --- token ------------------------------------------------------------------------------------------

    def access_token(self) -> str:
        """One shared token (the cache), refreshed ahead of expiry: each new token may revoke the last."""
        return self.tokens.get(self._fetch_token)

    def _fetch_token(self) -> tuple[str, int]:
        response = self.api.request(
            "GET",
            TOKEN_PATH,
            params={"grant_type": "client_credentials"},
            auth=(self.consumer_key, self.consumer_secret),
        )
        payload = response_object(response)
        token = payload.get("access_token")
        if response.status_code != 200 or not token:
            logger.error("M-Pesa token refused: HTTP %s %s", response.status_code, payload.get("errorCode", ""))
            raise ProviderError("M-Pesa refused our credentials.", status_code=response.status_code)
        try:
            lifetime = int(str(payload.get("expires_in", DEFAULT_TOKEN_LIFETIME_SECONDS)).strip())
        except ValueError:
            lifetime = DEFAULT_TOKEN_LIFETIME_SECONDS
        ttl = (
            max(1, lifetime - TOKEN_REFRESH_MARGIN_SECONDS)
            if lifetime > TOKEN_REFRESH_MARGIN_SECONDS
            else max(1, lifetime // 2)
        )
        return token, ttl

    def _forget_token(self) -> None:
        self.tokens.forget()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token()}", "Content-Type": "application/json"}

    def timestamp(self) -> str:
        """YYYYMMDDHHMMSS in Nairobi time; computed once per request and used for Password and Timestamp."""
        return datetime.now(NAIROBI).strftime("%Y%m%d%H%M%S")

    # --- STK push -----------------------------------------------------------------------------------------

    def start_charge(self, charge: ChargeRequest) -> ProviderResult:
        if charge.currency != "KES":
            raise ProviderError("M-Pesa collects Kenyan shillings (KES) only.", status_code=400)
        if charge.amount != charge.amount.to_integral_value():
            raise ProviderError(
                f"M-Pesa takes whole shillings only: KES {charge.amount} is not a whole amount.", status_code=400
            )
        amount = int(charge.amount)
        if amount < 1 or amount > MAX_AMOUNT:
            raise ProviderError(f"M-Pesa takes KES 1 to {MAX_AMOUNT:,} per payment.", status_code=400)
        phone = normalize_phone(charge.msisdn)
        timestamp = self.timestamp()
        body = {
            "BusinessShortCode": self.shortcode,
            "Password": stk_password(self.shortcode, self.passkey, timestamp),
            "Timestamp": timestamp,
            "TransactionType": self.transaction_type,
            "Amount": amount,
            "PartyA": phone,
            "PartyB": self.party_b,
            "PhoneNumber": phone,
            "CallBackURL": self._callback_url(charge.callback_url),
            "AccountReference": (charge.extra.get("account_reference") or account_reference(charge.reference))[
                :MAX_ACCOUNT_REFERENCE
            ],
            "TransactionDesc": self.transaction_desc,
        }
        # A POST that moves money: sent once, never retried automatically (a retry could prompt twice).
        response = self.api.request("POST", STK_PUSH_PATH, json=body, headers=self._headers(), moves_money=True)
        payload = response_object(response)
        checkout_id = payload.get("CheckoutRequestID")
        if response.status_code != 200 or str(payload.get("ResponseCode", "")).strip() != "0" or not checkout_id:
            if _is_token_error(payload):
                self._forget_token()
            logger.warning(
                "M-Pesa STK push for %s refused: HTTP %s %s %s",
                charge.reference,
                response.status_code,
                payload.get("errorCode", payload.get("ResponseCode", "")),
                payload.get("errorMessage", payload.get("ResponseDescription", "")),
            )
            raise ProviderError(
                _refusal(payload, "M-Pesa did not send the payment prompt."), status_code=response.status_code
            )
        return ProviderResult(
            status=PaymentStatus.PENDING,
            provider_reference=str(checkout_id),
            our_reference=charge.reference,
            amount=charge.amount,
            currency="KES",
            message=str(payload.get("CustomerMessage") or payload.get("ResponseDescription") or ""),
        )

    def _callback_url(self, given: str) -> str:
        """MPESA_CALLBACK_URL overrides the site's URL; "{token}" in it receives the payment's token."""
        if not self.callback_url_override:
            return given
        token = given.rstrip("/").rsplit("/", 1)[-1] if given else ""
        return self.callback_url_override.replace("{token}", token)

    # --- STK push query -----------------------------------------------------------------------------------

    def fetch_status(self, ref: PaymentRef) -> ProviderResult:
        if not ref.provider_reference:
            return ProviderResult(
                status=PaymentStatus.UNKNOWN,
                our_reference=ref.reference,
                message="No M-Pesa CheckoutRequestID to ask about yet.",
            )
        timestamp = self.timestamp()
        body = {
            "BusinessShortCode": self.shortcode,
            "Password": stk_password(self.shortcode, self.passkey, timestamp),
            "Timestamp": timestamp,
            "CheckoutRequestID": ref.provider_reference,
        }
        response = self.api.request("POST", STK_QUERY_PATH, json=body, headers=self._headers())
        payload = response_object(response)
        error_message = str(payload.get("errorMessage") or "")
        if PENDING_QUERY_TEXT in error_message.lower():
            # HTTP 500 "The transaction is being processed": the prompt is still open (notes B.6).
            return ProviderResult(
                status=PaymentStatus.PENDING,
                provider_reference=ref.provider_reference,
                currency="KES",
                message=error_message,
            )
        if response.status_code != 200 or "ResultCode" not in payload:
            if _is_token_error(payload):
                self._forget_token()
            if response.status_code == 200 and str(payload.get("ResponseCode", "")).strip() == "0":
                return ProviderResult(
                    status=PaymentStatus.PENDING, provider_reference=ref.provider_reference, currency="KES"
                )
            raise ProviderError(
                _refusal(payload, "M-Pesa did not answer the status query."),
                retryable=response.status_code >= 500,
                status_code=response.status_code,
            )
        code = str(payload.get("ResultCode")).strip()
        status, reason = status_for_result_code(code)
        return ProviderResult(
            status=status,
            provider_reference=str(payload.get("CheckoutRequestID") or ref.provider_reference),
            currency="KES",
            message=_reason(code, payload.get("ResultDesc"), reason),
        )

    # --- callbacks ------------------------------------------------------------------------------------------

    def parse_callback(self, kind: str, body: bytes, headers: Mapping[str, str]) -> ProviderResult:
        if kind != STK_KIND:
            raise CallbackMalformed(f"M-Pesa callbacks of kind {kind!r} are not handled here")
        callback = _stk_callback(body)
        checkout_id = callback.get("CheckoutRequestID")
        if not isinstance(checkout_id, str) or not checkout_id.strip():
            raise CallbackMalformed("Body.stkCallback.CheckoutRequestID is required")
        if "ResultCode" not in callback or isinstance(callback["ResultCode"], bool | dict | list | None):
            raise CallbackMalformed("Body.stkCallback.ResultCode is required")
        code = str(callback["ResultCode"]).strip()
        status, reason = status_for_result_code(code)
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
            currency="KES",
            receipt=str(items.get("MpesaReceiptNumber") or ""),
            msisdn=str(phone) if phone not in (None, "") else "",
            message=_reason(code, callback.get("ResultDesc"), reason),
        )

    def callback_secret(self, kind: str) -> str | None:
        if kind in C2B_KINDS:
            return self.c2b_token
        if kind in B2C_KINDS:
            return self.b2c_token
        return None  # STK: the secret is the payment's own token

    def authenticate_callback(self, callback: RawCallback) -> CallbackTrust:
        """UNVERIFIED unless MPESA_TRUST_CALLBACKS: Daraja signs nothing, the STK query is the proof.

        C2B has no query we could ask without initiator credentials: there the secret token registered with
        Safaricom (MPESA_C2B_TOKEN) is the evidence, and a C2B callback without it is only held for review.
        """
        kind, ip = callback.kind, callback.client_ip
        if callback.url_token == UrlToken.INVALID:
            logger.warning("M-Pesa %s callback with an unknown URL token rejected", kind)
            return CallbackTrust.REJECTED
        has_token = callback.url_token == UrlToken.VALID
        if self.allowed_networks and not self.source_allowed(ip):
            if self.ip_allowlist_strict:
                logger.warning("M-Pesa %s callback from %s: not in MPESA_ALLOWED_IPS; rejected (strict)", kind, ip)
                return CallbackTrust.REJECTED
            logger.warning("M-Pesa %s callback from %s: not in MPESA_ALLOWED_IPS (soft signal only)", kind, ip)
            if kind == STK_KIND:
                return CallbackTrust.UNVERIFIED  # confirmed by the STK query even when callbacks are trusted
        if kind in (*C2B_KINDS, *B2C_KINDS) and has_token:
            return CallbackTrust.TRUSTED  # the secret URL we gave: the only evidence C2B/B2C offer
        if self.trust_callbacks and has_token:
            return CallbackTrust.TRUSTED  # the operator chose to believe a callback on its secret URL
        return CallbackTrust.UNVERIFIED

    def source_allowed(self, ip: str | None) -> bool:
        if not ip:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in self.allowed_networks)

    def ack(self, kind: str, accepted: bool) -> tuple[int, dict]:
        # Daraja does not retry on our answer; it only wants a fast 200 (notes B.4, B.11).
        if kind == C2B_VALIDATION:
            return 200, c2b_validation_answer("0" if accepted else "C2B00016")
        return 200, {"ResultCode": 0, "ResultDesc": "Accepted"}

    # --- C2B paybill ----------------------------------------------------------------------------------------

    def parse_c2b(self, body: bytes) -> C2BPayment:
        """A C2B validation/confirmation body; CallbackMalformed names the missing or wrong-typed field."""
        data = load_json_object(body)
        trans_id = _text_field(data, "TransID", required=True)
        if not trans_id:
            raise CallbackMalformed("TransID must not be empty")
        raw_amount = data.get("TransAmount")
        if isinstance(raw_amount, bool) or not isinstance(raw_amount, str | int | float):
            raise CallbackMalformed('TransAmount is required: a number as a string, e.g. "100.00"')
        amount = parse_money(raw_amount)
        if amount is None or amount <= 0:
            raise CallbackMalformed("TransAmount must be a positive amount")
        names = [_text_field(data, key) for key in ("FirstName", "MiddleName", "LastName")]
        return C2BPayment(
            trans_id=trans_id,
            trans_time=_text_field(data, "TransTime", required=True),
            amount=amount,
            shortcode=_text_field(data, "BusinessShortCode", required=True),
            bill_ref=_text_field(data, "BillRefNumber", required=True),
            transaction_type=_text_field(data, "TransactionType"),
            msisdn=_text_field(data, "MSISDN"),
            payer_name=" ".join(n for n in names if n).strip(),
            invoice_number=_text_field(data, "InvoiceNumber"),
            third_party_trans_id=_text_field(data, "ThirdPartyTransID"),
        )

    def register_c2b_urls(
        self, *, confirmation_url: str, validation_url: str, response_type: str = "Completed"
    ) -> dict:
        """Register the C2B URLs for the paybill (one-time in production: notes B.7, B.13 #13)."""
        if response_type not in C2B_RESPONSE_TYPES:
            raise ProviderError(f"ResponseType must be exactly {' or '.join(C2B_RESPONSE_TYPES)}.")
        body = {
            "ShortCode": self.c2b_shortcode,
            "ResponseType": response_type,
            "ConfirmationURL": confirmation_url,
            "ValidationURL": validation_url,
        }
        response = self.api.request("POST", C2B_REGISTER_PATH, json=body, headers=self._headers())
        payload = response_object(response)
        if response.status_code != 200 or str(payload.get("ResponseCode", "")).strip() != "0":
            if _is_token_error(payload):
                self._forget_token()
            raise ProviderError(
                _refusal(payload, "M-Pesa did not register the C2B URLs."), status_code=response.status_code
            )
        return payload

    # --- B2C payouts -----------------------------------------------------------------------------------------

    def b2c_payment(
        self, *, reference: str, msisdn: str, amount: Decimal, result_url: str, timeout_url: str, remarks: str
    ) -> "B2CAccepted":
        """Send money to a wallet. A money-moving POST: sent once; a timeout is ambiguous, never retried here."""
        if amount != amount.to_integral_value() or amount < 1:
            raise ProviderError("M-Pesa pays whole shillings only.", status_code=400)
        if not (self.initiator_name and self.security_credential):
            raise ProviderError("M-Pesa B2C needs MPESA_INITIATOR_NAME and MPESA_SECURITY_CREDENTIAL.")
        body = {
            "OriginatorConversationID": reference,
            "InitiatorName": self.initiator_name,
            "SecurityCredential": self.security_credential,
            "CommandID": "BusinessPayment",
            "Amount": int(amount),
            "PartyA": self.b2c_shortcode,
            "PartyB": normalize_phone(msisdn),
            "Remarks": (SAFE_TEXT_RE.sub("", remarks) or "Treatment payout")[:100].ljust(2, "."),
            "QueueTimeOutURL": timeout_url,
            "ResultURL": result_url,
            "Occassion": "Treatment",  # sic: Daraja's spelling (notes B.8, B.13 #15)
        }
        response = self.api.request("POST", B2C_PATH, json=body, headers=self._headers(), moves_money=True)
        payload = response_object(response)
        if response.status_code != 200 or str(payload.get("ResponseCode", "")).strip() != "0":
            if _is_token_error(payload):
                self._forget_token()
            # A 5xx answer to a payout does not say the money stayed: it may have been sent. Ambiguous, never
            # re-sent; a 4xx is a refusal (nothing moved).
            raise ProviderError(
                _refusal(payload, "M-Pesa did not accept the payout."),
                retryable=response.status_code >= 500,
                status_code=response.status_code,
                ambiguous=response.status_code >= 500,
            )
        return B2CAccepted(
            conversation_id=str(payload.get("ConversationID") or ""),
            originator_conversation_id=str(payload.get("OriginatorConversationID") or reference),
            message=str(payload.get("ResponseDescription") or ""),
        )

    def parse_b2c_result(self, body: bytes) -> "B2CResult":
        """The `{"Result": {...}}` envelope of a B2C result or queue-timeout callback (notes B.8)."""
        data = load_json(body)
        result = data.get("Result") if isinstance(data, dict) else None
        if not isinstance(result, dict):
            raise CallbackMalformed('expected {"Result": {...}}')
        originator = _text_field(result, "OriginatorConversationID")
        conversation = _text_field(result, "ConversationID")
        if not (originator or conversation):
            raise CallbackMalformed("OriginatorConversationID or ConversationID is required")
        if "ResultCode" not in result or isinstance(result["ResultCode"], bool | dict | list | None):
            raise CallbackMalformed("Result.ResultCode is required")
        parameters = (result.get("ResultParameters") or {}) if isinstance(result.get("ResultParameters"), dict) else {}
        items = parameters.get("ResultParameter") or []
        if isinstance(items, dict):
            items = [items]
        values = {
            str(i.get("Key")): i.get("Value") for i in items if isinstance(i, dict) and "Key" in i and "Value" in i
        }
        return B2CResult(
            originator_conversation_id=originator,
            conversation_id=conversation,
            result_code=str(result["ResultCode"]).strip(),
            result_desc=clean_desc(result.get("ResultDesc")),
            transaction_id=_text_field(result, "TransactionID") or str(values.get("TransactionReceipt") or ""),
            amount=parse_money(values.get("TransactionAmount")),
        )


@dataclass(frozen=True)
class B2CAccepted:
    conversation_id: str
    originator_conversation_id: str
    message: str = ""


@dataclass(frozen=True)
class B2CResult:
    originator_conversation_id: str
    conversation_id: str
    result_code: str
    result_desc: str
    transaction_id: str = ""
    amount: Decimal | None = None

    @property
    def succeeded(self) -> bool:
        return self.result_code == "0"


def c2b_validation_answer(code: str) -> dict:
    """The validation reply (notes B.7): "0"/Accepted, or a C2B000xx code with "Rejected"."""
    return {"ResultCode": code, "ResultDesc": "Accepted" if code == "0" else "Rejected"}


def c2b_url_problems(url: str) -> list[str]:
    lowered = url.lower()
    return [word for word in C2B_FORBIDDEN_URL_WORDS if word in lowered]


def _text_field(data: dict, key: str, *, required: bool = False) -> str:
    if key not in data or data[key] is None:
        if required:
            raise CallbackMalformed(f"{key} is required")
        return ""
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise CallbackMalformed(f"{key} must be a string")
    return str(value).strip()


def _network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(str(value).strip(), strict=False)


def _stk_callback(body: bytes) -> dict:
    data = load_json_object(body)
    outer = data.get("Body")
    callback = outer.get("stkCallback") if isinstance(outer, dict) else None
    if not isinstance(callback, dict):
        raise CallbackMalformed('expected {"Body": {"stkCallback": {...}}}')
    return callback


def _metadata(metadata) -> dict[str, object]:
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


def _reason(code: str, desc, default: str) -> str:
    text = clean_desc(desc) or default
    return f"{text} (M-Pesa {code})"[:255]


def _is_token_error(payload) -> bool:
    return isinstance(payload, dict) and str(payload.get("errorCode", "")) in ("404.001.03", "400.003.01", "401.002.01")


def _refusal(payload: dict, default: str) -> str:
    text = payload.get("errorMessage") or payload.get("ResponseDescription") or payload.get("CustomerMessage")
    return f"M-Pesa: {text}" if text else default
