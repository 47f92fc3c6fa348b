"""What every mobile-money provider must do, in our words. Provider modules import no ORM."""

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum


class PaymentStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # the provider's answer did not tell us; never treated as a failure


class UrlToken(StrEnum):
    """What the secret segment of the callback URL proved (checked by the inbox against a keyed digest)."""

    ABSENT = "absent"  # the callback came to a path without a secret
    VALID = "valid"  # the secret we handed out for this kind of callback (or for one payment)
    INVALID = "invalid"  # a secret we never handed out: a guess or a stale URL


class CallbackTrust(StrEnum):
    TRUSTED = "trusted"  # authenticated by the provider's own mechanism: apply now
    UNVERIFIED = "unverified"  # plausible but unauthenticated: confirm with the status query first
    REJECTED = "rejected"  # failed authentication: never applied


@dataclass(frozen=True)
class RawCallback:
    """One delivery as it reached us: everything an adapter may look at to decide how far to believe it."""

    kind: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    client_ip: str | None = None  # through trusted proxies; Daraja's only other evidence is the source IP
    url_token: UrlToken = UrlToken.ABSENT


@dataclass(frozen=True)
class ChargeRequest:
    reference: str  # our Payment.reference; providers echo it back
    amount: Decimal
    currency: str
    msisdn: str = ""  # E.164 digits without "+"
    channel: str = ""
    callback_url: str = ""
    success_url: str = ""
    failure_url: str = ""
    description: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)  # bank account, OTP, …


@dataclass(frozen=True)
class PaymentRef:
    reference: str
    provider_reference: str
    channel: str = ""
    amount: Decimal | None = None
    currency: str = ""


@dataclass(frozen=True)
class ProviderResult:
    status: PaymentStatus
    provider_reference: str = ""
    our_reference: str = ""
    amount: Decimal | None = None
    currency: str = ""
    receipt: str = ""
    msisdn: str = ""
    message: str = ""  # the provider's human text, shown to admins and (translated) to donors
    checkout_url: str = ""


class ProviderError(Exception):
    """The provider was unreachable or refused the request. `message` is safe to show a donor.

    `ambiguous` means a request that moves money may have reached the provider and been acted on (it timed
    out, or the connection dropped after it was sent): the outcome is unknown, not failed, and only the
    provider's status query (or its callback) can settle it. Such a request is never sent again.
    """

    def __init__(
        self, message: str, *, retryable: bool = False, status_code: int | None = None, ambiguous: bool = False
    ):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status_code = status_code
        self.ambiguous = ambiguous


class CallbackMalformed(ValueError):
    """The body is not a callback we can read."""


def load_json(body: bytes) -> object:
    """The JSON value of a callback body, or CallbackMalformed: not JSON, not UTF-8, or nested so deeply
    that the parser gives up (RecursionError is not a ValueError, and must not escape as a crash that would
    be retried forever)."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise CallbackMalformed(
            "the body is not JSON" if not isinstance(exc, RecursionError) else "the body is nested too deeply"
        ) from exc


def load_json_object(body: bytes) -> dict:
    data = load_json(body)
    if not isinstance(data, dict):
        raise CallbackMalformed("the body must be a JSON object")
    return data


def parse_money(value: object) -> Decimal | None:
    """A provider's amount ("1,000.00", 1000, "60000") as Decimal; None when absent; CallbackMalformed if nonsense."""
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value).replace(",", "").strip())
    except InvalidOperation as exc:
        raise CallbackMalformed(f"amount {value!r} is not a number") from exc
    if not amount.is_finite():
        raise CallbackMalformed(f"amount {value!r} is not a number")
    return amount


class PaymentProvider(ABC):
    code: str
    display_name: str
    currencies: frozenset[str]
    channels: tuple[str, ...] = ()
    # Mobile money moves whole units: a fractional amount is refused with a 400 before anything is sent.
    whole_amounts_only: bool = False
    # Where providers told a callback URL per request send it; {code} and {token} (the payment's secret).
    callback_path_template: str = "/webhooks/{code}/{token}/"

    @abstractmethod
    def start_charge(self, charge: ChargeRequest) -> ProviderResult:
        """Send the payer a prompt or create a checkout page. Usually returns PENDING."""

    @abstractmethod
    def parse_callback(self, kind: str, body: bytes, headers: Mapping[str, str]) -> ProviderResult:
        """Translate a raw callback. Raise CallbackMalformed if it cannot be read."""

    @abstractmethod
    def authenticate_callback(self, callback: RawCallback) -> CallbackTrust:
        """Decide how far the raw callback can be believed, before anything is applied.

        The inbox has already checked the URL's secret segment (`callback.url_token`); the adapter adds what
        its provider offers (a password in the body, a signature, the source address)."""

    def callback_secret(self, kind: str) -> str | None:
        """The operator-configured secret in the URLs of this kind of callback (M-Pesa's paybill and payout
        URLs), or None when the secret is per payment (the token in an STK callback URL) or there is none."""
        return None

    @abstractmethod
    def fetch_status(self, ref: PaymentRef) -> ProviderResult:
        """Ask the provider directly. Used to verify callbacks and to reconcile."""

    @abstractmethod
    def ack(self, kind: str, accepted: bool) -> tuple[int, dict]:
        """The body the provider expects in answer to a callback."""

    def external_id(self, reference: str, channel: str) -> str:
        """The id we send the provider for this payment and it echoes back (some cap its length)."""
        return reference

    def redact(self, body: bytes) -> str:
        """The body as it may be stored: secrets removed."""
        return body.decode("utf-8", errors="replace")
