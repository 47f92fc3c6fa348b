"""Airtel's host, its OAuth token (one shared by every worker, dropped when refused), the routing headers every
business call carries, the RSA key, our ids in Airtel's alphabet, the MSISDN form Airtel wants, and Airtel's
answer envelope."""

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import phonenumbers
import requests

from payments.providers.airtel.codes import (
    ENCRYPTION_KEYS_PATH,
    ESB_CODES,
    ID_MAX,
    ID_MIN,
    NOT_ALPHANUMERIC_RE,
    TOKEN_PATH,
)
from payments.providers.base import ProviderError
from payments.providers.http import ProviderHttpClient, response_object
from payments.providers.tokens import TokenCache

logger = logging.getLogger("payments.airtel")

# Tokens live about 180 s (`expires_in`, sometimes a string): refresh a little early so a request never
# carries one that expires on the way.
TOKEN_REFRESH_MARGIN_SECONDS = 10
DEFAULT_TOKEN_LIFETIME_SECONDS = 180
PUBLIC_KEY_CACHE_SECONDS = 3600


class AirtelClient:
    def __init__(
        self,
        *,
        api_url: str,
        client_id: str,
        client_secret: str,
        country: str,
        currency: str,
        public_key_pem: str,
        connect_timeout: float,
        read_timeout: float,
    ):
        self.client_id = client_id
        self.client_secret = client_secret
        self.country = country
        self.currency = currency
        self.configured_key = public_key_pem.replace("\\n", "\n").strip()
        self.api = ProviderHttpClient(
            base_url=api_url, provider="Airtel Money", connect_timeout=connect_timeout, read_timeout=read_timeout
        )
        self.tokens = TokenCache(f"airtel:token:{self.api.base_url}:{client_id}")
        self.keys = TokenCache(f"airtel:rsa-key:{self.api.base_url}:{client_id}")

    # --- the token ------------------------------------------------------------------------------------

    def access_token(self) -> str:
        return self.tokens.get(self._fetch_token)

    def _fetch_token(self) -> tuple[str, int]:
        response = self.api.request(
            "POST",
            TOKEN_PATH,
            json={"client_id": self.client_id, "client_secret": self.client_secret, "grant_type": "client_credentials"},
            headers={"Accept": "*/*", "Content-Type": "application/json"},
        )
        payload = response_object(response)
        token = payload.get("access_token")
        if response.status_code != 200 or not isinstance(token, str) or not token:
            logger.error("Airtel Money token refused: HTTP %s %s", response.status_code, payload.get("error", ""))
            raise ProviderError(
                "Airtel Money refused our credentials.",
                retryable=response.status_code >= 500,
                status_code=response.status_code,
            )
        return token, token_ttl(payload.get("expires_in"))

    def forget_token_if_refused(self, response: requests.Response) -> None:
        if response.status_code == 401:  # expired early or revoked: the next call fetches a new one
            self.tokens.forget()

    def headers(self) -> dict[str, str]:
        """Every business call: the bearer and the routing headers (without X-Country: ROUTER110)."""
        return {
            "Authorization": f"Bearer {self.access_token()}",
            "Accept": "*/*",
            "Content-Type": "application/json",
            "X-Country": self.country,
            "X-Currency": self.currency,
        }

    def get(self, path: str) -> requests.Response:
        """A read, asked again once with a fresh token when the token was refused."""
        response = self.api.request("GET", path, headers=self.headers())
        if response.status_code == 401:
            self.tokens.forget()
            response = self.api.request("GET", path, headers=self.headers())
            self.forget_token_if_refused(response)
        return response

    def post_money(self, path: str, body: Mapping[str, Any]) -> requests.Response:
        """A POST that moves money: sent once, never retried (a 401 is not retried either: the request fails,
        and the next one gets a new token)."""
        response = self.send_bytes("POST", path, json_bytes(body), self.headers())
        self.forget_token_if_refused(response)
        return response

    def send_bytes(self, method: str, path: str, raw: bytes, headers: Mapping[str, str]) -> requests.Response:
        """The exact bytes, as a money-moving request: a failure after the request may have left us is ambiguous."""
        return self.api.request(method, path, data=raw, headers=headers, moves_money=True)

    # --- Airtel's RSA public key ------------------------------------------------------------------------

    def public_key(self) -> str:
        """AIRTEL_PUBLIC_KEY, else the key Airtel serves at GET /v1/rsa/encryption-keys (cached for an hour)."""
        if self.configured_key:
            return self.configured_key
        return self.keys.get(self._fetch_public_key)

    def _fetch_public_key(self) -> tuple[str, int]:
        response = self.get(ENCRYPTION_KEYS_PATH)
        payload = response_object(response)
        data = payload.get("data")
        key = data.get("key") if isinstance(data, dict) else None
        if response.status_code != 200 or not isinstance(key, str) or not key.strip():
            raise ProviderError(
                refusal(payload, "Airtel Money did not give us its encryption key."),
                retryable=response.status_code >= 500,
                status_code=response.status_code,
            )
        return key.strip(), PUBLIC_KEY_CACHE_SECONDS


def token_ttl(expires_in: object) -> int:
    """Seconds to keep a token whose `expires_in` Airtel gave as a number or a string."""
    try:
        lifetime = int(float(str(expires_in).strip()))
    except (TypeError, ValueError):
        lifetime = DEFAULT_TOKEN_LIFETIME_SECONDS
    if lifetime > 2 * TOKEN_REFRESH_MARGIN_SECONDS:
        return lifetime - TOKEN_REFRESH_MARGIN_SECONDS
    return max(0, lifetime // 2)  # 0: use it once, do not cache


def json_bytes(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def airtel_id(reference: str) -> str:
    """Our reference in Airtel's alphabet: "RHCI-DN-123-20251219120000" → "RHCIDN12320251219120000".

    Letters and digits only, 5–64 characters; deterministic, so the enquiry (which is given our reference
    again) asks about the id the push sent. A reference that would not fit becomes its SHA-256 in hex."""
    cleaned = NOT_ALPHANUMERIC_RE.sub("", reference)
    if ID_MIN <= len(cleaned) <= ID_MAX:
        return cleaned
    return hashlib.sha256(reference.encode()).hexdigest()[:ID_MAX]


def national_msisdn(msisdn: str, country: str) -> str:
    """An E.164 number (256712345678), or one written nationally (0712345678), as Airtel wants it: the national
    number without the country code ("Do not send the country code in msisdn"). ProviderError otherwise."""
    digits = "".join(ch for ch in str(msisdn or "") if ch.isdigit())
    calling_code = phonenumbers.country_code_for_region(country)
    problem = ProviderError(f"Airtel Money needs a mobile number of {country} (e.g. 0712 345 678).", status_code=400)
    if not digits or not calling_code:
        raise problem
    text = f"+{digits}" if digits.startswith(str(calling_code)) and len(digits) > len(str(calling_code)) + 6 else digits
    try:
        number = phonenumbers.parse(text, country)
    except phonenumbers.NumberParseException as exc:
        raise problem from exc
    if number.country_code != calling_code or not phonenumbers.is_possible_number(number):
        raise problem
    return phonenumbers.national_significant_number(number)


@dataclass(frozen=True)
class Envelope:
    """Airtel's answer: `{"data": {"transaction": {…}}, "status": {…}}`, or a gateway error
    (`{"status_code", "status_message"}`, OAuth's `{"error", "error_description"}`). Codes as strings."""

    transaction: Mapping[str, Any]
    code: str  # status.code: "200", "500" (a number in some answers)
    result_code: str  # ESB…
    response_code: str  # DP…
    success: bool | None
    message: str
    gateway_code: str  # ROUTER110, CONNECTION_TIMEOUT, invalid_token, …

    @property
    def readable(self) -> bool:
        """Whether the body said anything we can act on."""
        return bool(self.transaction or self.code or self.result_code or self.response_code or self.gateway_code)


def envelope(payload: Mapping[str, Any]) -> Envelope:
    status = payload.get("status")
    status = status if isinstance(status, Mapping) else {}
    data = payload.get("data")
    transaction = data.get("transaction") if isinstance(data, Mapping) else None
    success = status.get("success")
    gateway_code = payload.get("status_code") or payload.get("error") or ""
    return Envelope(
        transaction=transaction if isinstance(transaction, Mapping) else {},
        code=_text(status.get("code")),
        result_code=_text(status.get("result_code")),
        response_code=_text(status.get("response_code")),
        success=success if isinstance(success, bool) else None,
        message=_text(status.get("message") or payload.get("status_message") or payload.get("error_description")),
        gateway_code=_text(gateway_code),
    )


def refusal(payload: Mapping[str, Any], default: str) -> str:
    """A sentence for a person from Airtel's answer (its message, else the meaning of its ESB code)."""
    answer = envelope(payload)
    text = answer.message or ESB_CODES.get(answer.result_code, "")
    codes = ", ".join(c for c in (answer.result_code, answer.response_code, answer.gateway_code) if c)
    if not text:
        return f"{default} ({codes})" if codes else default
    return f"Airtel Money: {text}" + (f" ({codes})" if codes else "")


def _text(value: object) -> str:
    if value is None or isinstance(value, bool | dict | list):
        return ""
    return str(value).strip()
