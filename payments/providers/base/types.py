"""The words the provider boundary is written in: enums and the small descriptive dataclasses.

Kept apart from the capabilities (capabilities.py) so that a provider's codes module, the registry or the URL
conf can name a status, a trust verdict or a callback route without pulling in the ABCs.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Settlement(StrEnum):
    """How a rail tells us the outcome of money we sent (a payout or a refund)."""

    CALLBACK = "callback"  # a result callback to the URL we gave
    STATUS_QUERY = "status_query"  # a status query by the id we chose before sending
    ANSWER = "answer"  # the request's own answer is the result
    PERSON = "person"  # nothing: a person checks the provider's portal


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


class CallbackRole(StrEnum):
    """What a callback is about; the inbox dispatches on it (payments.services.dispatch)."""

    PAYMENT = "payment"  # a collection's outcome
    PAYBILL_VALIDATION = "paybill_validation"
    PAYBILL_CONFIRMATION = "paybill_confirmation"
    PAYOUT_RESULT = "payout_result"
    PAYOUT_TIMEOUT = "payout_timeout"
    REFUND_RESULT = "refund_result"
    REFUND_TIMEOUT = "refund_timeout"  # the refund waited too long in the provider's queue: ambiguous
    NOTICE = "notice"  # stored and acknowledged; nothing to apply (e.g. a provider's notification feed)
    # A wallet balance's result (Daraja Account Balance): handled by the app named in CALLBACK_ROLE_HANDLERS.
    BALANCE_RESULT = "balance_result"
    BALANCE_TIMEOUT = "balance_timeout"  # the balance query waited too long in the provider's queue


class RouteToken(StrEnum):
    NONE = "none"  # the provider calls one fixed URL (AzamPay's dashboard setting)
    OPTIONAL = "optional"  # the URL with our secret, and the bare path (accepted, never trusted on its word)
    REQUIRED = "required"


class PaybillRejection(StrEnum):
    """Why a paybill validation refuses a payment; each provider answers with its own code."""

    ACCOUNT = "account"
    AMOUNT = "amount"
    SHORTCODE = "shortcode"
    OTHER = "other"


@dataclass(frozen=True)
class CallbackRoute:
    """One callback URL a provider calls. `path` is from the site root, without slashes at either end; the
    URL answers with and without the trailing slash (providers do not follow redirects on POST)."""

    kind: str
    role: CallbackRole
    path: str
    name: str  # for reverse(); "<name>-token" for the form with the secret
    token: RouteToken = RouteToken.OPTIONAL
    methods: tuple[str, ...] = ("post",)


@dataclass(frozen=True)
class PaymentMethod:
    """One way to pay shown to donors: a provider and (for aggregators) a channel."""

    provider: str
    channel: str  # "" when the provider has one way to pay
    label: str
    currencies: frozenset[str]
    needs_phone: bool = True
    api_only: bool = False  # needs fields the portal does not ask for (bank account, OTP)
    extra_fields: tuple[str, ...] = ()
    # Extra fields that take one of a few values (AzamPay's bank: CRDB or NMB); required, matched ignoring case.
    extra_choices: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def key(self) -> str:
        """ "provider:channel" (or "provider"): the portal's form value."""
        return f"{self.provider}:{self.channel}" if self.channel else self.provider


@dataclass(frozen=True)
class RawCallback:
    """One delivery as it reached us: everything an adapter may look at to decide how far to believe it."""

    kind: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    client_ip: str | None = None  # through trusted proxies; Daraja's only other evidence is the source IP
    url_token: UrlToken = UrlToken.ABSENT


@dataclass(frozen=True)
class DeployWarning:
    """A weak production setting, reported by `manage.py check --deploy` (payments/checks.py)."""

    id: str  # "payments.W003"
    message: str
    hint: str


@dataclass(frozen=True)
class SettingProblem:
    """A provider setting the provider cannot work with: a system check error on every `manage.py check`
    (payments/checks.py), and the reason the provider is not built (ProviderSettingsInvalid)."""

    id: str  # "payments.E002"
    setting: str  # the environment variable ("MTN_CURRENCY")
    message: str
    hint: str = ""
