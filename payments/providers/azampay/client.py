"""AzamPay's two hosts (authenticator and API), its token and its error bodies."""

import logging
from datetime import UTC, datetime

import requests

from payments.providers.base import ProviderError
from payments.providers.http import ProviderHttpClient, response_json
from payments.providers.tokens import TokenCache

logger = logging.getLogger("payments.azampay")

TOKEN_PATH = "/AppRegistration/GenerateToken"  # noqa: S105 (a URL path, not a secret)
TOKEN_REFRESH_MARGIN_SECONDS = 60
DEFAULT_TOKEN_LIFETIME_SECONDS = 3600


class AzamPayClient:
    def __init__(
        self,
        *,
        app_name: str,
        client_id: str,
        client_secret: str,
        auth_url: str,
        api_url: str,
        api_key: str,
        connect_timeout: float,
        read_timeout: float,
    ):
        self.app_name = app_name
        self.client_id = client_id
        self.client_secret = client_secret
        self.api_key = api_key
        self.auth = ProviderHttpClient(
            base_url=auth_url, provider="AzamPay", connect_timeout=connect_timeout, read_timeout=read_timeout
        )
        self.api = ProviderHttpClient(
            base_url=api_url, provider="AzamPay", connect_timeout=connect_timeout, read_timeout=read_timeout
        )
        self.tokens = TokenCache(f"azampay:token:{self.auth.base_url}:{client_id}")

    def access_token(self) -> str:
        return self.tokens.get(self._fetch_token)

    def _fetch_token(self) -> tuple[str, int]:
        response = self.auth.request(
            "POST",
            TOKEN_PATH,
            json={"appName": self.app_name, "clientId": self.client_id, "clientSecret": self.client_secret},
            headers=self.api_key_header(),
        )
        payload = response_json(response)
        payload = payload if isinstance(payload, dict) else {}
        data = payload.get("data") or {}
        token = data.get("accessToken") if isinstance(data, dict) else None
        if response.status_code != 200 or not token:
            logger.error("AzamPay token refused: HTTP %s %s", response.status_code, payload.get("message", ""))
            raise ProviderError("AzamPay refused our credentials.", status_code=response.status_code)
        # A token already inside the refresh margin (ttl ≤ 0) is used once, not cached.
        return token, token_ttl(data.get("expire"))

    def api_key_header(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key} if self.api_key else {}

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token()}", **self.api_key_header()}

    def forget_token_if_refused(self, response: requests.Response) -> None:
        if response.status_code == 401:  # revoked or expired early: the next call fetches a new one
            self.tokens.forget()


def token_ttl(expire: object) -> int:
    """Seconds to keep a token whose `expire` AzamPay gave as an ISO time (UTC when it has no zone)."""
    try:
        expires_at = datetime.fromisoformat(str(expire).replace("Z", "+00:00"))
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        seconds = int((expires_at - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        seconds = DEFAULT_TOKEN_LIFETIME_SECONDS
    return seconds - TOKEN_REFRESH_MARGIN_SECONDS


def refusal(payload: object, default: str) -> str:
    """A donor-safe sentence from AzamPay's error body (problem details, `message`, `msg`)."""
    if isinstance(payload, dict):
        if payload.get("errors"):
            fields = ", ".join(sorted(payload["errors"]))
            return f"AzamPay rejected the request ({fields})."
        text = payload.get("message") or payload.get("msg") or payload.get("title")
        if text:
            return f"AzamPay: {text}"
    return default
