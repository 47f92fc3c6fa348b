"""AirtelProvider: the class the registry knows. Collections (USSD push), Payouts (disbursements) and Refunds
(whole payments), each delegated to its module; HTTP and translation only."""

from collections.abc import Mapping
from typing import Any

from payments.providers.airtel import balance, callbacks, checks, codes, collection, disbursement, refunds
from payments.providers.airtel.client import AirtelClient, airtel_id
from payments.providers.airtel.codes import (
    ACK,
    DEFAULT_COLLECTION_PATH,
    DISBURSEMENT_KIND,
    MARKETS,
    NOTIFICATION_KIND,
    PAYMENT_KIND,
    PIN_PADDINGS,
    PKCS1,
)
from payments.providers.base import (
    BalanceAnswer,
    CallbackMalformed,
    CallbackRole,
    CallbackRoute,
    CallbackTrust,
    ChargeRequest,
    Collections,
    DeployWarning,
    PaymentMethod,
    PaymentProvider,
    PaymentRef,
    PayoutAccepted,
    PayoutRequest,
    PayoutResult,
    Payouts,
    ProviderResult,
    RawCallback,
    RefundAccepted,
    RefundRequest,
    Refunds,
    RouteToken,
    SettingProblem,
    Settlement,
    WalletBalances,
)
from payments.providers.tokens import TokenCache


class AirtelProvider(PaymentProvider, Collections, Payouts, Refunds, WalletBalances):
    code = "airtel"
    display_name = "Airtel Money"
    public_name = "airtel_money"
    # Per instance (AIRTEL_CURRENCY, set in __init__); this is the default's.
    currencies = frozenset({"UGX"})
    payout_currencies = frozenset({"UGX"})
    whole_amounts_only = True
    status_asks_by_our_reference = True  # GET /standard/v1/payments/{our transaction.id}
    refunds_partial = False  # the refund body names the payment only: always its whole amount
    # A disbursement's answer is its result, and the enquiry (by the id we chose) settles one in progress.
    # A refund has neither enquiry nor callback: an answer that is not final goes to a person at once.
    payout_settled_by = frozenset({Settlement.ANSWER, Settlement.STATUS_QUERY})
    refund_settled_by = frozenset({Settlement.ANSWER})
    # Airtel calls the one collection URL set on its portal: no secret of ours can be in it. It documents no
    # disbursement or notification callback; those paths exist for the public contract.
    callback_routes = (
        CallbackRoute(PAYMENT_KIND, CallbackRole.PAYMENT, "webhooks/airtel/payment", "airtel-payment", RouteToken.NONE),
        CallbackRoute(
            DISBURSEMENT_KIND,
            CallbackRole.PAYOUT_RESULT,
            "webhooks/airtel/disbursement",
            "airtel-disbursement",
            RouteToken.NONE,
        ),
        CallbackRoute(
            NOTIFICATION_KIND,
            CallbackRole.NOTICE,
            "webhooks/airtel/notification",
            "airtel-notification",
            RouteToken.NONE,
        ),
    )

    def __init__(
        self,
        *,
        api_url: str,
        client_id: str,
        client_secret: str,
        country: str = "UG",
        currency: str = "UGX",
        callback_secret: str = "",
        collection_path: str = DEFAULT_COLLECTION_PATH,
        sign_requests: bool = False,
        public_key_pem: str = "",
        disbursement_pin: str = "",
        pin_padding: str = PKCS1,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ):
        self.refuse_invalid_settings({"country": country, "currency": currency, "pin_padding": pin_padding})
        country, currency = country.strip().upper(), currency.strip().upper()
        padding = codes.pin_padding(pin_padding) or PKCS1
        self.api_url = api_url
        self.client = AirtelClient(
            api_url=api_url,
            client_id=client_id,
            client_secret=client_secret,
            country=country,
            currency=currency,
            public_key_pem=public_key_pem,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        # AIRTEL_CURRENCY is a setting: the currencies are per instance.
        self.currencies = frozenset({currency})
        self.payout_currencies = frozenset({currency})
        self.phone_regions = frozenset({country})  # Airtel takes national numbers of AIRTEL_COUNTRY only
        self.hash_secret = callback_secret
        path = "/" + (collection_path or DEFAULT_COLLECTION_PATH).strip().lstrip("/")
        self.collection = collection.CollectionSettings(path=path, sign=bool(sign_requests))
        self.disbursement = disbursement.DisbursementSettings(pin=str(disbursement_pin or ""), pin_padding=padding)

    @classmethod
    def settings_problems(cls, config: Mapping[str, Any]) -> list[SettingProblem]:
        problems: list[SettingProblem] = []
        raw_country, raw_currency = config.get("country", "UG"), config.get("currency", "UGX")
        country, currency = str(raw_country or "").strip().upper(), str(raw_currency or "").strip().upper()
        markets = ", ".join(sorted(MARKETS))
        if country not in MARKETS:
            problems.append(
                SettingProblem(
                    "payments.E004",
                    "AIRTEL_COUNTRY",
                    f"AIRTEL_COUNTRY={raw_country!r} is not a country Airtel Money serves ({markets}): "
                    "Airtel Money cannot be used.",
                    "The ISO 3166 alpha-2 code of your Airtel Money market, such as UG.",
                )
            )
        elif currency not in MARKETS[country]:
            problems.append(
                SettingProblem(
                    "payments.E005",
                    "AIRTEL_CURRENCY",
                    f"AIRTEL_CURRENCY={raw_currency!r} is not a currency Airtel Money takes in {country} "
                    f"({', '.join(MARKETS[country])}): Airtel Money cannot be used.",
                    f"Set AIRTEL_CURRENCY={MARKETS[country][0]} (the ISO 4217 code of AIRTEL_COUNTRY's money).",
                )
            )
        raw_padding = config.get("pin_padding", PKCS1)
        if codes.pin_padding(str(raw_padding or "")) is None:
            problems.append(
                SettingProblem(
                    "payments.E006",
                    "AIRTEL_PIN_PADDING",
                    f"AIRTEL_PIN_PADDING={raw_padding!r} is not one of {', '.join(PIN_PADDINGS)} (or pkcs1v15): "
                    "Airtel Money cannot be used.",
                    "pkcs1 (PKCS#1 v1.5, Airtel's default) or oaep (OAEP with SHA-1), as your Airtel account says.",
                )
            )
        return problems

    @property
    def tokens(self) -> TokenCache:
        return self.client.tokens

    def access_token(self) -> str:
        return self.client.access_token()

    # --- Collections: USSD push -----------------------------------------------------------------------

    def payment_methods(self) -> tuple[PaymentMethod, ...]:
        return (PaymentMethod(self.code, "", "Airtel Money", self.currencies),)

    def external_id(self, reference: str, channel: str) -> str:
        # Airtel takes letters and digits only: "RHCI-DN-123-20251219120000" → "RHCIDN12320251219120000".
        return airtel_id(reference)

    def start_charge(self, charge: ChargeRequest) -> ProviderResult:
        return collection.push(self.client, self.collection, charge)

    def fetch_status(self, ref: PaymentRef) -> ProviderResult:
        return collection.enquire(self.client, ref)

    def parse_callback(self, kind: str, body: bytes, headers: Mapping[str, str]) -> ProviderResult:
        if kind != PAYMENT_KIND:
            raise CallbackMalformed(f"Airtel Money callbacks of kind {kind!r} are not payment callbacks")
        return callbacks.parse_payment(body)

    # --- Payouts: disbursements -----------------------------------------------------------------------

    def payout_reference_before_request(self, reference: str) -> str:
        return disbursement.payout_id(reference)

    def send_payout(self, payout: PayoutRequest) -> PayoutAccepted:
        return disbursement.send(self.client, self.disbursement, payout)

    def parse_payout_result(self, kind: str, body: bytes) -> PayoutResult:
        return disbursement.parse_result(body)

    def payout_status(self, *, reference: str, provider_reference: str) -> PayoutResult | None:
        return disbursement.enquire(self.client, reference=reference, provider_reference=provider_reference)

    # --- Refunds ----------------------------------------------------------------------------------------

    def send_refund(self, refund: RefundRequest) -> RefundAccepted:
        return refunds.send(self.client, refund)

    # refund_status: Airtel documents no refund enquiry (the base answers None); parse_refund_result: no
    # refund callback either.

    # --- every provider ---------------------------------------------------------------------------------

    # --- the month close: the collection wallet's balance ----------------------------------------------

    balance_accounts = (balance.ACCOUNT,)

    def request_balance(self, *, account: str, result_url: str = "", timeout_url: str = "") -> BalanceAnswer:
        return balance.request_balance(self.client)

    def authenticate_callback(self, callback: RawCallback) -> CallbackTrust:
        return callbacks.authenticate(self.hash_secret, callback)

    def ack(self, kind: str, accepted: bool) -> tuple[int, dict]:
        return 200, {"status": dict(ACK["status"])}

    def redact(self, body: bytes) -> str:
        return callbacks.redact(body)

    def deploy_warnings(self, *, site_url: str) -> list[DeployWarning]:
        return checks.deploy_warnings(self, site_url=site_url)
