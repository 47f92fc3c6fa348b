"""The contracts: what every provider is (`PaymentProvider`) and what it can do (the capability ABCs).

Services depend on a capability (`isinstance(provider, Payouts)`), never on a provider's class; the
registry answers `get_capable(code, Payouts)`.
"""

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from payments.providers.base.errors import ProviderSettingsInvalid
from payments.providers.base.messages import (
    ChargeRequest,
    PaybillPayment,
    PaymentRef,
    PayoutAccepted,
    PayoutRequest,
    PayoutResult,
    ProviderResult,
    RefundAccepted,
    RefundRequest,
    RefundResult,
)
from payments.providers.base.types import (
    CallbackRole,
    CallbackRoute,
    CallbackTrust,
    DeployWarning,
    PaybillRejection,
    PaymentMethod,
    RawCallback,
    SettingProblem,
    Settlement,
)


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
        A payout not decided yet is a PayoutResult with status PENDING."""
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
