"""Daraja's host, its OAuth token (one shared by every worker: a new token may revoke the last), and the
pieces every request needs: the Nairobi timestamp, the STK password, the phone format, error sentences."""

import base64
import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from payments.providers.base import ProviderError
from payments.providers.http import ProviderHttpClient, response_object
from payments.providers.mpesa.codes import MSISDN_RE, TOKEN_ERROR_CODES
from payments.providers.tokens import TokenCache

logger = logging.getLogger("payments.mpesa")

NAIROBI = ZoneInfo("Africa/Nairobi")
TOKEN_PATH = "/oauth/v1/generate"  # noqa: S105 (a URL path, not a secret)
# Tokens last 3600 s; refresh at about 50 min so a request never carries an expiring one.
TOKEN_REFRESH_MARGIN_SECONDS = 600
DEFAULT_TOKEN_LIFETIME_SECONDS = 3599


class DarajaClient:
    def __init__(
        self, *, api_url: str, consumer_key: str, consumer_secret: str, connect_timeout: float, read_timeout: float
    ):
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.api = ProviderHttpClient(
            base_url=api_url, provider="M-Pesa", connect_timeout=connect_timeout, read_timeout=read_timeout
        )
        self.tokens = TokenCache(f"mpesa:token:{self.api.base_url}:{consumer_key}")

    def access_token(self) -> str:
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

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token()}", "Content-Type": "application/json"}

    def forget_token_if_refused(self, payload: object) -> None:
        if isinstance(payload, dict) and str(payload.get("errorCode", "")) in TOKEN_ERROR_CODES:
            self.tokens.forget()

    def timestamp(self) -> str:
        """YYYYMMDDHHMMSS in Nairobi time; computed once per request and used for Password and Timestamp."""
        return datetime.now(NAIROBI).strftime("%Y%m%d%H%M%S")


def stk_password(shortcode: str, passkey: str, timestamp: str) -> str:
    return base64.b64encode(f"{shortcode}{passkey}{timestamp}".encode()).decode()


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


def refusal(payload: dict, default: str) -> str:
    text = payload.get("errorMessage") or payload.get("ResponseDescription") or payload.get("CustomerMessage")
    return f"M-Pesa: {text}" if text else default
