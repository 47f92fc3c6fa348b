"""AzamPay (Tanzania): MNO push, hosted card checkout, bank checkout, callbacks, status query.

Facts and their sources: shared/providers/azampay-and-daraja.md, Part A. The callback is authenticated by
a dashboard "callback password" echoed in its body (and optionally an RSA signature); without one it is a
hint, confirmed by the status query before anything is credited.
"""

import base64
import hmac
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

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
    load_json_object,
    parse_money,
)
from payments.providers.http import ProviderHttpClient, response_json
from payments.providers.tokens import TokenCache

logger = logging.getLogger("payments.azampay")

MNO_CHANNELS = ("Mpesa", "Airtel", "Tigo", "Halopesa", "Azampesa")
BANK_CHANNELS = ("CRDB", "NMB")
CARD_CHANNEL = "card"
BANK_CHANNEL = "bank"
CALLBACK_SUCCESS = "success"
TOKEN_REFRESH_MARGIN_SECONDS = 60
HOSTED_EXTERNAL_ID_MAX = 30
DEFAULT_TOKEN_LIFETIME_SECONDS = 3600
# Donors type operator names in many ways; AzamPay's enum is case-sensitive.
CHANNEL_ALIASES = {c.lower(): c for c in MNO_CHANNELS} | {
    "m-pesa": "Mpesa",
    "vodacom": "Mpesa",
    "mixx": "Tigo",
    "yas": "Tigo",
    "halotel": "Halopesa",
    "azam pesa": "Azampesa",
    "airtel money": "Airtel",
    "card": CARD_CHANNEL,
    "bank": BANK_CHANNEL,
}
# Free-text statuses of the status query, matched conservatively: anything else is UNKNOWN, never FAILED.
# Words that say "not finished" come first: "Pending success confirmation" is pending, not paid, and
# "processing, not yet failed" is pending, not failed. Only text with no pending word can end a payment.
STATUS_MAP: tuple[tuple[str, PaymentStatus], ...] = (
    ("pending", PaymentStatus.PENDING),
    ("processing", PaymentStatus.PENDING),
    ("progress", PaymentStatus.PENDING),
    ("awaiting", PaymentStatus.PENDING),
    ("initiated", PaymentStatus.PENDING),
    ("cancel", PaymentStatus.CANCELLED),
    ("timeout", PaymentStatus.EXPIRED),
    ("timed out", PaymentStatus.EXPIRED),
    ("expired", PaymentStatus.EXPIRED),
    # Negations before "success": "Transaction unsuccessful" must never read as paid.
    ("unsuccess", PaymentStatus.FAILED),
    ("not success", PaymentStatus.FAILED),
    ("fail", PaymentStatus.FAILED),
    ("reject", PaymentStatus.FAILED),
    ("insufficient", PaymentStatus.FAILED),
    ("success", PaymentStatus.SUCCEEDED),
)
SECRET_FIELDS = ("password",)


def normalize_channel(value: str) -> str:
    return CHANNEL_ALIASES.get((value or "").strip().lower(), "")


def status_from_text(text: str) -> PaymentStatus:
    lowered = (text or "").lower()
    for needle, status in STATUS_MAP:
        if needle in lowered:
            return status
    return PaymentStatus.UNKNOWN


class AzamPayProvider(PaymentProvider):
    code = "azampay"
    display_name = "AzamPay"
    currencies = frozenset({"TZS"})
    whole_amounts_only = True
    channels = (*MNO_CHANNELS, CARD_CHANNEL, BANK_CHANNEL)

    def __init__(
        self,
        *,
        app_name: str,
        client_id: str,
        client_secret: str,
        auth_url: str,
        api_url: str,
        api_key: str = "",
        vendor_id: str = "",
        callback_password: str = "",
        public_key_pem: str = "",
        require_signature: bool = False,
        status_path: str = "/azampay/gettransactionstatus",
        status_id_param: str = "pgReferenceId",
        status_provider_param: str = "bankName",
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ):
        self.app_name = app_name
        self.client_id = client_id
        self.client_secret = client_secret
        self.api_key = api_key
        self.vendor_id = vendor_id
        self.callback_password = callback_password
        self.public_key_pem = public_key_pem
        self.require_signature = require_signature
        self.status_path = status_path
        self.status_id_param = status_id_param
        self.status_provider_param = status_provider_param
        self.auth = ProviderHttpClient(
            base_url=auth_url, provider="AzamPay", connect_timeout=connect_timeout, read_timeout=read_timeout
        )
        self.api = ProviderHttpClient(
            base_url=api_url, provider="AzamPay", connect_timeout=connect_timeout, read_timeout=read_timeout
        )
        self.tokens = TokenCache(f"azampay:token:{self.auth.base_url}:{client_id}")

    # --- token --------------------------------------------------------------------------------------

    def access_token(self) -> str:
        return self.tokens.get(self._fetch_token)

    def _fetch_token(self) -> tuple[str, int]:
        response = self.auth.request(
            "POST",
            "/AppRegistration/GenerateToken",
            json={"appName": self.app_name, "clientId": self.client_id, "clientSecret": self.client_secret},
            headers=self._api_key_header(),
        )
        payload = response_json(response)
        data = payload.get("data") or {}
        token = data.get("accessToken") if isinstance(data, dict) else None
        if response.status_code != 200 or not token:
            logger.error("AzamPay token refused: HTTP %s %s", response.status_code, payload.get("message", ""))
            raise ProviderError("AzamPay refused our credentials.", status_code=response.status_code)
        # A token already inside the refresh margin (ttl ≤ 0) is used once, not cached.
        return token, self._token_ttl(data.get("expire"))

    @staticmethod
    def _token_ttl(expire: str | None) -> int:
        try:
            expires_at = datetime.fromisoformat(str(expire).replace("Z", "+00:00"))
            if expires_at.tzinfo is None:
                expires_at = expires_at.replace(tzinfo=UTC)
            seconds = int((expires_at - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            seconds = DEFAULT_TOKEN_LIFETIME_SECONDS
        return seconds - TOKEN_REFRESH_MARGIN_SECONDS

    def _api_key_header(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key} if self.api_key else {}

    def _forget_token_if_refused(self, response) -> None:
        if response.status_code == 401:  # revoked or expired early: the next call fetches a new one
            self.tokens.forget()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token()}", **self._api_key_header()}

    def external_id(self, reference: str, channel: str) -> str:
        # PostCheckout allows 30 characters (notes A.5); the MNO and bank calls allow 128.
        return reference[:HOSTED_EXTERNAL_ID_MAX] if normalize_channel(channel) == CARD_CHANNEL else reference

    # --- charges --------------------------------------------------------------------------------------

    def start_charge(self, charge: ChargeRequest) -> ProviderResult:
        if charge.currency != "TZS":
            raise ProviderError("AzamPay collects Tanzanian shillings (TZS) only.")
        if charge.amount != charge.amount.to_integral_value():
            raise ProviderError("AzamPay takes whole shillings only.")
        channel = normalize_channel(charge.channel)
        if channel == CARD_CHANNEL:
            return self._hosted_checkout(charge)
        if channel == BANK_CHANNEL:
            return self._bank_checkout(charge)
        if channel not in MNO_CHANNELS:
            raise ProviderError(f"Unknown AzamPay channel {charge.channel!r}.")
        return self._mno_checkout(charge, channel)

    def _mno_checkout(self, charge: ChargeRequest, channel: str) -> ProviderResult:
        body = {
            "accountNumber": charge.msisdn,
            "amount": _whole(charge.amount),
            "currency": charge.currency,
            "externalId": charge.reference,
            "provider": channel,
            "additionalProperties": {"reference": charge.reference},
        }
        # A POST that moves money: sent once, never retried automatically.
        response = self.api.request(
            "POST", "/azampay/mno/checkout", json=body, headers=self._headers(), moves_money=True
        )
        self._forget_token_if_refused(response)
        payload = response_json(response)
        if response.status_code != 200 or payload.get("success") is not True or not payload.get("transactionId"):
            raise ProviderError(
                _refusal(payload, "AzamPay did not start the payment."), status_code=response.status_code
            )
        return ProviderResult(
            status=PaymentStatus.PENDING,
            provider_reference=str(payload["transactionId"]),
            our_reference=charge.reference,
            amount=charge.amount,
            currency=charge.currency,
            message=str(payload.get("message", "")),
        )

    def _bank_checkout(self, charge: ChargeRequest) -> ProviderResult:
        bank = (charge.extra.get("bank") or "").upper()
        if bank not in BANK_CHANNELS:
            raise ProviderError("Choose CRDB or NMB for a bank payment.")
        body = {
            "amount": _whole(charge.amount),
            "currencyCode": charge.currency,  # not "currency": the bank call names it differently
            "merchantAccountNumber": charge.extra.get("account_number", ""),
            "merchantMobileNumber": charge.msisdn,
            "merchantName": charge.extra.get("account_name", ""),
            "otp": charge.extra.get("otp", ""),
            "provider": bank,
            "referenceId": charge.reference,
            "additionalProperties": {"reference": charge.reference},
        }
        response = self.api.request(
            "POST", "/azampay/bank/checkout", json=body, headers=self._headers(), moves_money=True
        )
        self._forget_token_if_refused(response)
        payload = response_json(response)
        data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
        transaction_id = (data.get("properties") or {}).get("ReferenceID") or payload.get("transactionId")
        if response.status_code != 200 or payload.get("success") is False or not transaction_id:
            raise ProviderError(
                _refusal(payload, "The bank did not accept the payment."), status_code=response.status_code
            )
        return ProviderResult(
            status=PaymentStatus.PENDING,
            provider_reference=str(transaction_id),
            our_reference=charge.reference,
            amount=charge.amount,
            currency=charge.currency,
            message=str(payload.get("msg") or payload.get("message") or ""),
        )

    def _hosted_checkout(self, charge: ChargeRequest) -> ProviderResult:
        body = {
            "appName": self.app_name,
            "clientId": self.client_id,
            "vendorId": self.vendor_id,
            "vendorName": self.app_name,
            "amount": _whole(charge.amount),
            "currency": charge.currency,
            "language": "en",
            "externalId": self.external_id(charge.reference, CARD_CHANNEL),
            "requestOrigin": _origin(charge.success_url),
            "redirectSuccessURL": charge.success_url,
            "redirectFailURL": charge.failure_url,
            "cart": {"items": [{"name": charge.description or "Donation"}]},
        }
        response = self.api.request("POST", "/api/v1/Partner/PostCheckout", json=body, headers=self._headers())
        self._forget_token_if_refused(response)
        url = response.text.strip().strip('"')
        if response.status_code != 200 or not url.startswith(("http://", "https://")):
            raise ProviderError("AzamPay did not open a card checkout page.", status_code=response.status_code)
        return ProviderResult(
            status=PaymentStatus.PENDING,
            # The hosted page has no transaction id of its own yet: the callback's utilityref finds us.
            provider_reference="",
            our_reference=charge.reference,
            amount=charge.amount,
            currency=charge.currency,
            checkout_url=url,
        )

    # --- status ---------------------------------------------------------------------------------------

    def fetch_status(self, ref: PaymentRef) -> ProviderResult:
        if not ref.provider_reference:
            return ProviderResult(
                status=PaymentStatus.UNKNOWN,
                our_reference=ref.reference,
                message="No AzamPay transaction id to ask about yet.",
            )
        params = {self.status_id_param: ref.provider_reference}
        if self.status_provider_param:
            params[self.status_provider_param] = normalize_channel(ref.channel) or ref.channel
        response = self.api.request("GET", self.status_path, params=params, headers=self._headers())
        self._forget_token_if_refused(response)
        payload = response_json(response)
        if isinstance(payload, list):  # some documented examples wrap the object in an array
            payload = payload[0] if payload and isinstance(payload[0], dict) else {}
        if response.status_code >= 500:
            raise ProviderError("AzamPay's status service failed.", retryable=True, status_code=response.status_code)
        if response.status_code != 200 or payload.get("success") is False and not payload.get("data"):
            raise ProviderError(
                _refusal(payload, "AzamPay did not answer the status query."), status_code=response.status_code
            )
        # The transaction's state is in `data` (or `transactionstatus`); the envelope's "Request successful."
        # only says the query worked, so it must never be read as a payment's success.
        data = payload.get("data")
        text = data if isinstance(data, str) else ""
        status = status_from_text(str(payload.get("transactionstatus") or text))
        if status == PaymentStatus.FAILED and payload.get("transactionstatus") is None:
            status = status_from_text(text)  # "Transaction failed: timeout" → EXPIRED, not FAILED
        return ProviderResult(
            status=status,
            provider_reference=ref.provider_reference,
            our_reference=str(payload.get("utilityref") or ref.reference),
            amount=parse_money(payload.get("amount")),
            currency="TZS",
            receipt=str(payload.get("mnoreference") or ""),
            message=text or str(payload.get("message") or ""),
        )

    # --- callbacks --------------------------------------------------------------------------------------

    def parse_callback(self, kind: str, body: bytes, headers: Mapping[str, str]) -> ProviderResult:
        data = _callback_fields(body)
        our_reference = str(data.get("utilityref") or "")
        provider_reference = str(data.get("reference") or data.get("transid") or "")
        external = str(data.get("externalreference") or "")
        if not our_reference and external and external != provider_reference:
            our_reference = external  # the variant seen in seed 001: our id in externalreference
        provider_reference = provider_reference or external
        state = str(data.get("transactionstatus") or "").strip().lower()
        if not state or not (our_reference or provider_reference):
            raise CallbackMalformed("transactionstatus and utilityref/reference are required")
        message = str(data.get("message") or "")
        if state == CALLBACK_SUCCESS:
            status = PaymentStatus.SUCCEEDED
        else:
            mapped = status_from_text(message)
            status = mapped if mapped in (PaymentStatus.CANCELLED, PaymentStatus.EXPIRED) else PaymentStatus.FAILED
        return ProviderResult(
            status=status,
            provider_reference=provider_reference,
            our_reference=our_reference,
            amount=parse_money(data.get("amount")),
            currency="TZS",
            receipt=str(data.get("mnoreference") or data.get("fspreferenceid") or provider_reference or ""),
            msisdn=str(data.get("msisdn") or ""),
            message=message,
        )

    def authenticate_callback(self, callback: RawCallback) -> CallbackTrust:
        try:
            data = _callback_fields(callback.body)
        except CallbackMalformed:
            return CallbackTrust.UNVERIFIED  # parse_callback will reject it with a precise 400
        if self.public_key_pem and (data.get("signature") or self.require_signature):
            if not self._signature_valid(data):
                return CallbackTrust.REJECTED
            if not self.callback_password:
                return CallbackTrust.TRUSTED
        if self.callback_password:
            given = str(data.get("password") or "")
            if hmac.compare_digest(given.encode(), self.callback_password.encode()):
                return CallbackTrust.TRUSTED
            return CallbackTrust.REJECTED
        return CallbackTrust.UNVERIFIED

    def _signature_valid(self, data: Mapping[str, object]) -> bool:
        signed = "".join(
            str(data.get(k) or "") for k in ("utilityref", "externalreference", "transactionstatus", "operator")
        )
        try:
            key = serialization.load_pem_public_key(self.public_key_pem.replace("\\n", "\n").encode())
            key.verify(
                base64.b64decode(str(data.get("signature") or "")), signed.encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except (InvalidSignature, ValueError, TypeError):
            logger.warning("AzamPay callback signature did not verify (utilityref %s)", data.get("utilityref"))
            return False
        return True

    def ack(self, kind: str, accepted: bool) -> tuple[int, dict]:
        return 200, {"success": True, "message": "Callback received"}

    def redact(self, body: bytes) -> str:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return body.decode("utf-8", errors="replace")
        if isinstance(data, dict):
            for key in list(data):
                if key.lower() in SECRET_FIELDS:
                    data[key] = "***"
        return json.dumps(data, ensure_ascii=False)


def _callback_fields(body: bytes) -> dict:
    data = load_json_object(body)
    return {str(k).lower(): v for k, v in data.items()}  # key casing varies between integrations


def _refusal(payload, default: str) -> str:
    if isinstance(payload, dict):
        if payload.get("errors"):
            fields = ", ".join(sorted(payload["errors"]))
            return f"AzamPay rejected the request ({fields})."
        text = payload.get("message") or payload.get("msg") or payload.get("title")
        if text:
            return f"AzamPay: {text}"
    return default


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""


def _whole(amount: Decimal) -> str:
    return str(int(amount))
