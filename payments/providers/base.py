"""What a mobile-money provider can do for us, in our words. Provider packages import no ORM.

`PaymentProvider` is what every provider is: a code, the callback routes it declares, how far its callbacks
can be believed and how they are acknowledged. What it can *do* is a set of capabilities, each an ABC with
frozen dataclasses crossing the boundary:

- `Collections`: prompt a payer (push or checkout page), ask about a payment, read a payment callback;
- `Paybill`: money the payer sends on their own (M-Pesa C2B): validation and confirmation callbacks;
- `Payouts`: send money to a treatment partner's wallet, read the result callback;
- `Refunds`: give a completed payment back to the payer.

Services depend on a capability (`isinstance(provider, Payouts)`), never on a provider's class.
"""

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, ClassVar


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


class RouteToken(StrEnum):
    NONE = "none"  # the provider calls one fixed URL (AzamPay's dashboard setting)
    OPTIONAL = "optional"  # the URL with our secret, and the bare path (accepted, never trusted on its word)
    REQUIRED = "required"


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


# --- Collections ----------------------------------------------------------------------------------------


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
    # The provider's id for this payment when we choose it (MTN's X-Reference-Id): stored before the request.
    provider_reference: str = ""


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


# --- Paybill --------------------------------------------------------------------------------------------


class PaybillRejection(StrEnum):
    """Why a paybill validation refuses a payment; each provider answers with its own code."""

    ACCOUNT = "account"
    AMOUNT = "amount"
    SHORTCODE = "shortcode"
    OTHER = "other"


@dataclass(frozen=True)
class PaybillPayment:
    """A payment the payer made on their own phone, as its validation or confirmation callback tells it."""

    transaction_id: str  # unique per payment: the idempotency key
    amount: Decimal
    account: str  # what the payer typed as the account number
    shortcode: str = ""
    time: str = ""
    payer_id: str = ""  # as the provider sends it: a phone number, masked, or (M-Pesa since 2024) a hash
    payer_name: str = ""
    transaction_type: str = ""


# --- Payouts --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PayoutRequest:
    reference: str  # our id for the payout; the provider echoes it in the result
    msisdn: str
    amount: Decimal
    currency: str
    result_url: str  # where the provider sends the result (with our secret)
    timeout_url: str = ""
    remarks: str = ""
    provider_reference: str = ""  # our choice of the provider's id, stored before the request (MTN)


@dataclass(frozen=True)
class PayoutAccepted:
    provider_reference: str  # the provider's id for the payout
    message: str = ""
    result: "PayoutResult | None" = None  # a provider that answers with the final result at once (Airtel)


@dataclass(frozen=True)
class PayoutResult:
    our_reference: str
    provider_reference: str
    code: str
    description: str
    succeeded: bool
    receipt: str = ""
    amount: Decimal | None = None  # what the provider says it paid, when it says (compared with ours)
    pending: bool = False  # a status query's "not decided yet" (then `succeeded` means nothing)
    currency: str = ""


# --- Refunds --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefundRequest:
    reference: str  # our id for the refund
    payment_reference: str  # the provider's id of the payment being refunded
    amount: Decimal
    currency: str
    msisdn: str = ""
    result_url: str = ""
    timeout_url: str = ""
    reason: str = ""
    provider_reference: str = ""  # our choice of the provider's id for the refund, stored before the request
    payment_our_reference: str = ""  # our reference of the payment (some providers echo it)
    payment_receipt: str = ""  # the provider's receipt of the payment (M-Pesa's reversal names the receipt)


@dataclass(frozen=True)
class RefundAccepted:
    provider_reference: str
    message: str = ""
    # SUCCEEDED when the answer itself says the money went back (Airtel answers at once); else the result
    # comes later, by callback or status query.
    status: PaymentStatus = PaymentStatus.PENDING
    receipt: str = ""


@dataclass(frozen=True)
class RefundResult:
    our_reference: str
    provider_reference: str
    status: PaymentStatus  # SUCCEEDED, FAILED, PENDING or UNKNOWN
    message: str = ""
    receipt: str = ""  # the provider's transaction id of the money going back
    amount: Decimal | None = None  # what the provider says it gave back, when it says (compared with ours)
    currency: str = ""
    reversed_receipt: str = ""  # the receipt of the payment it gave back (M-Pesa's OriginalTransactionID)


# --- Errors and parsing helpers -------------------------------------------------------------------------


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


class ProviderSettingsInvalid(ValueError):
    """A provider was built with settings it cannot work with (`SettingProblem`s). A ValueError, as before."""

    def __init__(self, code: str, problems: list[SettingProblem]):
        super().__init__("; ".join(problem.message for problem in problems))
        self.code = code
        self.problems = problems


class CallbackMalformed(ValueError):
    """The body is not a callback we can read."""


def load_json(body: bytes) -> object:
    """The JSON value of a callback body, or CallbackMalformed: not JSON, not UTF-8, or nested so deeply
    that the parser gives up (RecursionError is not a ValueError, and must not escape as a crash that would
    be retried forever)."""
    try:
        return json.loads(body)
    except RecursionError as exc:
        raise CallbackMalformed("the body is nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise CallbackMalformed("the body is not JSON") from exc


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


# --- The contracts --------------------------------------------------------------------------------------


class PaymentProvider(ABC):
    """What every provider is: its code, the callback URLs it calls, how its callbacks are believed."""

    code: ClassVar[str]
    display_name: ClassVar[str]
    public_name: ClassVar[str]  # the name in /webhooks/<code>/health/ ("mtn_mobile_money")
    callback_routes: ClassVar[tuple[CallbackRoute, ...]] = ()

    @abstractmethod
    def authenticate_callback(self, callback: RawCallback) -> CallbackTrust:
        """Decide how far the raw callback can be believed, before anything is applied.

        The inbox has already checked the URL's secret segment (`callback.url_token`); the adapter adds what
        its provider offers (a password in the body, a signature, the source address)."""

    @abstractmethod
    def ack(self, kind: str, accepted: bool) -> tuple[int, dict]:
        """The body the provider expects in answer to a callback."""

    def callback_secret(self, kind: str) -> str | None:
        """The operator-configured secret in the URLs of this kind of callback (M-Pesa's paybill and payout
        URLs), or None when the secret is per payment (the token in an STK callback URL) or there is none."""
        return None

    def redact(self, body: bytes) -> str:
        """The body as it may be stored: secrets removed."""
        return body.decode("utf-8", errors="replace")

    @classmethod
    def settings_problems(cls, config: Mapping[str, Any]) -> list[SettingProblem]:
        """What is wrong with these constructor arguments (`settings.PAYMENT_PROVIDERS[code]`), without
        building the provider; the constructor refuses the same with ProviderSettingsInvalid."""
        return []

    @classmethod
    def refuse_invalid_settings(cls, config: Mapping[str, Any]) -> None:
        problems = cls.settings_problems(config)
        if problems:
            raise ProviderSettingsInvalid(cls.code, problems)

    def deploy_warnings(self, *, site_url: str) -> list[DeployWarning]:
        """Weak production settings of this provider (`manage.py check --deploy`); `site_url` is the public
        base of the callback URLs we hand out."""
        return []

    @classmethod
    def callback_role(cls, kind: str) -> CallbackRole | None:
        return next((route.role for route in cls.callback_routes if route.kind == kind), None)

    @classmethod
    def route_for(cls, role: CallbackRole) -> CallbackRoute | None:
        """The route whose URL we hand to the provider for this role (the first one declared)."""
        return next((route for route in cls.callback_routes if route.role == role), None)


class Collections(ABC):
    """Collect a donation: prompt the payer, ask about the payment, read its callback."""

    currencies: frozenset[str]  # a class default; a provider whose currency is a setting (MTN) sets it per instance
    # The countries (ISO 3166 alpha-2) whose mobile numbers the rail can prompt; empty: any country's (MTN's
    # sandbox). A number of another country, or not a mobile one, is refused with a 400 before anything is sent.
    phone_regions: frozenset[str] = frozenset()

    def is_test_number(self, msisdn: str) -> bool:
        """A number the provider documents for testing (MTN's 46733123450–63), reached whatever its country."""
        return False

    # Mobile money moves whole units: a fractional amount is refused with a 400 before anything is sent.
    whole_amounts_only: ClassVar[bool] = False
    # The status query asks by our own id (Airtel's enquiry by transaction.id), never by an id a callback
    # named: its answer is bound to the payment by the question itself.
    status_asks_by_our_reference: ClassVar[bool] = False

    @abstractmethod
    def payment_methods(self) -> tuple[PaymentMethod, ...]:
        """The ways to pay this provider offers donors (one per channel for aggregators)."""

    def normalize_channel(self, channel: str) -> str | None:
        """The channel as the provider names it, or None when it is not one of ours ("" = none needed)."""
        methods = self.payment_methods()
        wanted = (channel or "").strip().lower()
        for method in methods:
            if method.channel.lower() == wanted:
                return method.channel
        return None

    @abstractmethod
    def start_charge(self, charge: ChargeRequest) -> ProviderResult:
        """Send the payer a prompt or create a checkout page. Usually returns PENDING."""

    @abstractmethod
    def parse_callback(self, kind: str, body: bytes, headers: Mapping[str, str]) -> ProviderResult:
        """Translate a raw payment callback. Raise CallbackMalformed if it cannot be read."""

    @abstractmethod
    def fetch_status(self, ref: PaymentRef) -> ProviderResult:
        """Ask the provider directly. Used to verify callbacks and to reconcile. Report only what the answer
        says: a reference, amount or currency it leaves out stays empty, never filled in from `ref` (the
        services bind an answer to a payment by what the provider said, not by what we asked)."""

    def external_id(self, reference: str, channel: str) -> str:
        """The id we send the provider for this payment and it echoes back (some cap its length)."""
        return reference

    def reference_before_request(self) -> str:
        """The provider's id for a new payment when we must choose it (MTN: a UUID4 X-Reference-Id), so it
        is stored before the request leaves; "" when the provider returns its own."""
        return ""


class Paybill(ABC):
    """Payments the payer starts on their own phone to our paybill, with an account number."""

    paybill_currency: ClassVar[str]

    @property
    @abstractmethod
    def paybill_shortcode(self) -> str:
        """Our paybill number; a validation for another one is refused."""

    @abstractmethod
    def parse_paybill(self, body: bytes) -> PaybillPayment:
        """A validation or confirmation body. CallbackMalformed names the missing or wrong-typed field."""

    @abstractmethod
    def paybill_answer(self, rejection: PaybillRejection | None) -> dict:
        """The validation answer: accept (None) or refuse for this reason."""

    @abstractmethod
    def register_paybill_urls(self, *, confirmation_url: str, validation_url: str, response_type: str) -> dict:
        """Tell the provider where to send paybill callbacks."""


class Payouts(ABC):
    """Send money to a wallet (a treatment partner's)."""

    payout_currencies: frozenset[str]
    payout_whole_amounts_only: ClassVar[bool] = True
    payout_settled_by: ClassVar[frozenset[Settlement]] = frozenset({Settlement.CALLBACK})

    @abstractmethod
    def send_payout(self, payout: PayoutRequest) -> PayoutAccepted:
        """Send once. A timeout after sending is ProviderError(ambiguous=True): never re-sent."""

    @abstractmethod
    def parse_payout_result(self, kind: str, body: bytes) -> PayoutResult:
        """A payout result (or queue timeout) callback."""

    def payout_reference_before_request(self, reference: str) -> str:
        """The provider's id for the payout with our `reference`, when it is known before the request (MTN: our
        choice; Airtel: our reference in its alphabet). Stored before sending, so that a result or a status
        query finds the payout even when the request's answer was lost."""
        return ""

    def payout_status(self, *, reference: str, provider_reference: str) -> PayoutResult | None:
        """Ask the provider about a payout (providers whose callbacks may never come); None: no such query.
        A payout not decided yet is a PayoutResult with `pending=True`."""
        return None


class Refunds(ABC):
    """Give a completed payment back to its payer."""

    refunds_partial: ClassVar[bool] = False  # may a refund be less than the payment?
    refund_settled_by: ClassVar[frozenset[Settlement]] = frozenset({Settlement.CALLBACK})

    def refund_reference_before_request(self) -> str:
        """The provider's id for a new refund when we choose it (MTN), stored before the request."""
        return ""

    @abstractmethod
    def send_refund(self, refund: RefundRequest) -> RefundAccepted:
        """Ask for the refund once. A timeout after sending is ProviderError(ambiguous=True)."""

    def refund_status(self, *, reference: str, provider_reference: str) -> RefundResult | None:
        """Ask the provider about a refund; None when it has no such query (its result comes by callback)."""
        return None

    def parse_refund_result(self, kind: str, body: bytes) -> RefundResult:
        """A refund result callback (providers that send one)."""
        raise NotImplementedError
