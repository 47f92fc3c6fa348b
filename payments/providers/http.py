"""A thin requests client: explicit timeouts, bounded retries for reads, none for money-moving POSTs."""

import logging
from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError
from urllib3.util.retry import Retry

from payments.providers.base import ProviderError

logger = logging.getLogger("payments.http")


class ProviderHttpClient:
    def __init__(self, *, base_url: str, provider: str, connect_timeout: float = 5.0, read_timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.provider = provider
        self.timeout = (connect_timeout, read_timeout)
        self.session = requests.Session()
        # Retries only for idempotent methods (GET); urllib3 never retries POST with this allowlist.
        retry = Retry(
            total=2,
            connect=2,
            read=2,
            backoff_factor=0.3,
            status_forcelist=(502, 503, 504),
            allowed_methods=frozenset({"GET", "HEAD"}),
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return f"{self.base_url}/{path_or_url.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        moves_money: bool = False,
    ) -> requests.Response:
        """One request. With `moves_money` (a charge, a payout), a failure after the request may have left us
        is reported as ambiguous: the provider may have acted, so the caller must not call it failed. `data`
        sends exact bytes (a signed body must be the bytes that were signed) instead of `json`."""
        url = self.url(path)
        try:
            response = self.session.request(
                method,
                url,
                json=json,
                data=data,
                params=params,
                headers=dict(headers or {}),
                auth=auth,
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            sent = request_may_have_arrived(exc)
            logger.warning(
                "%s %s %s failed%s: %s",
                self.provider,
                method,
                path,
                " after sending (outcome unknown)" if sent and moves_money else "",
                type(exc).__name__,
            )
            timed_out = isinstance(exc, requests.Timeout)
            message = (
                f"{self.provider} did not answer in time." if timed_out else f"{self.provider} could not be reached."
            )
            raise ProviderError(message, retryable=True, ambiguous=moves_money and sent) from exc
        logger.info("%s %s %s -> %s", self.provider, method, path, response.status_code)
        return response


def request_may_have_arrived(exc: requests.RequestException) -> bool:
    """False only when the connection was never made (refused, DNS, connect timeout): then nothing was sent.
    A read timeout or a connection dropped mid-exchange may come after the provider received the request."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.ConnectionError):
        reason = exc.args[0] if exc.args else None
        reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
        if isinstance(reason, NewConnectionError):  # includes NameResolutionError
            return False
    return True


def response_json(response: requests.Response) -> dict | list:
    """The JSON body, or {} when there is none (providers answer HTML or plain text on some errors)."""
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict | list) else {}


def response_object(response: requests.Response) -> dict:
    payload = response_json(response)
    return payload if isinstance(payload, dict) else {}
