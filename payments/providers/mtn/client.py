"""MTN MoMo's host, one access token per product (Collection, Disbursement: each has its own subscription key
and may have its own API user), the headers every call needs, and MTN's error bodies.

Tokens live an hour and are shared by every worker through `TokenCache`, refreshed ten minutes before they
expire (MTN's own advice: never one per transaction). A 401 on a product call drops the cached token and the
call is made once more with a fresh one: a 401 is MTN's gateway refusing the request before anything was
created, and a money-moving request carries the same X-Reference-Id again, which MTN never executes twice.
"""

import logging
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import requests

from payments.providers.base import ProviderError
from payments.providers.http import ProviderHttpClient, response_object
from payments.providers.mtn.codes import (
    CURRENCY_REFUSED_TEXT,
    DEFINITE_REFUSALS,
    FORBIDDEN_TEXT_RE,
    MAX_TEXT,
    MSISDN_RE,
    SPACES_RE,
    TOKEN_PATH,
)
from payments.providers.tokens import TokenCache

logger = logging.getLogger("payments.mtn")

NAME = "MTN MoMo"
TOKEN_REFRESH_MARGIN_SECONDS = 600
DEFAULT_TOKEN_LIFETIME_SECONDS = 3600


@dataclass(frozen=True)
class Product:
    """One MTN product's credentials: the subscription key (per product) and the API user and key."""

    name: str  # "collection" | "disbursement"
    subscription_key: str
    api_user: str
    api_key: str


class MtnClient:
    def __init__(
        self,
        *,
        api_url: str,
        target_environment: str,
        products: tuple[Product, ...],
        connect_timeout: float,
        read_timeout: float,
    ):
        self.target_environment = target_environment
        self.api = ProviderHttpClient(
            base_url=api_url, provider=NAME, connect_timeout=connect_timeout, read_timeout=read_timeout
        )
        self.products = {p.name: p for p in products}
        self.tokens = {p.name: TokenCache(f"mtn:token:{self.api.base_url}:{p.name}:{p.api_user}") for p in products}

    # --- tokens ------------------------------------------------------------------------------------------

    def access_token(self, product: str) -> str:
        return self.tokens[product].get(lambda: self._fetch_token(product))

    def _fetch_token(self, product: str) -> tuple[str, int]:
        credentials = self.products[product]
        # Basic API user:key and the product's key, and no body (a body → 400).
        response = self.api.request(
            "POST",
            TOKEN_PATH.format(product=product),
            headers={"Ocp-Apim-Subscription-Key": credentials.subscription_key},
            auth=(credentials.api_user, credentials.api_key),
        )
        payload = response_object(response)
        token = payload.get("access_token")
        if response.status_code != 200 or not isinstance(token, str) or not token:
            # Wrong API user or key: HTTP 500 {"error": "login_failed"}; wrong subscription key: 401.
            error = str(payload.get("error") or payload.get("code") or payload.get("message") or "")
            logger.error("MTN MoMo %s token refused: HTTP %s %s", product, response.status_code, error[:100])
            raise ProviderError(
                f"{NAME} refused our {product} credentials.",
                retryable=response.status_code >= 500 and error != "login_failed",
                status_code=response.status_code,
            )
        return token, token_ttl(payload.get("expires_in"))

    # --- requests ----------------------------------------------------------------------------------------

    def headers(self, product: str, *, reference_id: str = "", callback_url: str = "") -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.access_token(product)}",
            "X-Target-Environment": self.target_environment,
            "Ocp-Apim-Subscription-Key": self.products[product].subscription_key,
        }
        if reference_id:
            headers["X-Reference-Id"] = reference_id
        if callback_url:  # optional; present but empty → 400
            headers["X-Callback-Url"] = callback_url
        return headers

    def request(
        self,
        product: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        reference_id: str = "",
        callback_url: str = "",
        moves_money: bool = False,
    ) -> requests.Response:
        """One product call; on 401 the token is dropped and the call made once more with a fresh one."""

        def send() -> requests.Response:
            return self.api.request(
                method,
                path,
                json=json,
                headers=self.headers(product, reference_id=reference_id, callback_url=callback_url),
                moves_money=moves_money,
            )

        response = send()
        for retry in (True, False):
            if response.status_code != 401:
                break
            self.tokens[product].forget()  # revoked or expired early: the next call fetches a new one
            logger.warning("MTN MoMo %s %s %s answered 401; token dropped", product, method, path)
            if retry:
                response = send()
        return response


def token_ttl(expires_in: object) -> int:
    """Seconds to keep a token MTN said lives `expires_in` seconds (3600): ten minutes less."""
    try:
        lifetime = int(str(expires_in).strip())
    except ValueError:
        lifetime = DEFAULT_TOKEN_LIFETIME_SECONDS
    if lifetime > TOKEN_REFRESH_MARGIN_SECONDS:
        return lifetime - TOKEN_REFRESH_MARGIN_SECONDS
    return max(1, lifetime // 2)


# --- what every request needs --------------------------------------------------------------------------


def new_reference_id() -> str:
    return str(uuid.uuid4())


def reference_id(chosen: str, what: str) -> str:
    """The X-Reference-Id to send: the one the service stored before the request (a UUID), or — when a caller
    did not choose one — a fresh one (it comes back in the answer, but is lost if the request times out)."""
    if not chosen:
        logger.warning("MTN MoMo %s without a stored X-Reference-Id; a new one is used", what)
        return new_reference_id()
    try:
        return str(uuid.UUID(chosen))
    except ValueError as exc:
        raise ProviderError(f"{NAME} needs a UUID as the transaction id; {chosen!r} is not one.") from exc


def normalize_msisdn(msisdn: str) -> str:
    """MSISDN digits with the country code, no "+" (256772123456), or ProviderError."""
    digits = "".join(ch for ch in str(msisdn or "") if ch.isdigit())
    if not MSISDN_RE.fullmatch(digits):
        raise ProviderError(f"{NAME} needs a mobile number with its country code, such as 256 772 123 456.")
    return digits


def safe_text(text: str, fallback: str) -> str:
    """payerMessage / payeeNote as MTN takes them: no apostrophe or "&", at most 160 characters, never empty."""
    cleaned = SPACES_RE.sub(" ", FORBIDDEN_TEXT_RE.sub("", text or "")).strip()
    return (cleaned or fallback)[:MAX_TEXT].strip()


def whole_amount(amount: Decimal, currency: str, what: str) -> str:
    """The amount as MTN's string of whole units, or ProviderError (refused before anything is sent)."""
    if not amount.is_finite() or amount != amount.to_integral_value():
        raise ProviderError(f"{NAME} takes whole amounts only: {currency} {amount} is not one.", status_code=400)
    if amount < 1:
        raise ProviderError(f"{NAME} {what} must be at least 1 {currency}.", status_code=400)
    return str(int(amount))


# --- MTN's error bodies ---------------------------------------------------------------------------------


def error_code(payload: dict) -> str:
    """The ErrorReason of an error body (`{"code", "message"}`; some messages end with the code)."""
    code = payload.get("code")
    if isinstance(code, str) and code.strip():
        return code.strip().upper()
    message = str(payload.get("message") or "")
    if CURRENCY_REFUSED_TEXT in message.lower():
        return "INVALID_CURRENCY"
    for known in DEFINITE_REFUSALS:
        if message.rstrip(". ").upper().endswith(known):
            return known
    return ""


def refusal(payload: dict, default: str) -> str:
    """A donor-safe sentence from MTN's error body."""
    message = payload.get("message") or payload.get("error")
    code = error_code(payload)
    if isinstance(message, str) and message.strip():
        text = message.strip()
        return f"{NAME}: {text}" + (f" ({code})" if code and code not in text.upper() else "")
    return f"{default} ({code})" if code else default


def refused(response: requests.Response, default: str, *, what: str) -> ProviderError:
    """The error for a money-moving POST MTN did not answer with 202.

    5xx: MTN may have created the transaction (ambiguous, never re-sent; the status query settles it), unless
    the body names a check MTN made first (currency, callback host, target environment). 409: a transaction
    with our X-Reference-Id exists — ours, sent before: ambiguous too. Any other answer (4xx, a 2xx other than
    202) is a refusal: nothing moved.
    """
    payload = response_object(response)
    code = error_code(payload)
    status = response.status_code
    ambiguous = (status >= 500 and code not in DEFINITE_REFUSALS) or status == 409
    logger.warning(
        "MTN MoMo %s not accepted: HTTP %s %s%s", what, status, code or "-", " (outcome unknown)" if ambiguous else ""
    )
    if status == 409:
        message = f"{NAME} already has this {what}; waiting for its status."
    else:
        message = refusal(payload, default)
    return ProviderError(message, retryable=status >= 500, status_code=status, ambiguous=ambiguous)


def query_failed(response: requests.Response, default: str) -> ProviderError:
    """The error for a status GET MTN did not answer with 200 (or 404, which callers read as "not yet")."""
    payload = response_object(response)
    return ProviderError(
        refusal(payload, default), retryable=response.status_code >= 500, status_code=response.status_code
    )
