"""MtnProvider: the class the registry knows. Collections (request to pay), Payouts (disbursement transfers)
and Refunds, each delegated to its module; HTTP and translation only.

MTN signs nothing and sends each callback once, without retry: a callback is only ever a reason to ask the
status GET (the payment's secret in the callback URL tells us which payment it is about), and
reconciliation polls because the callback may never come.
"""

from collections.abc import Mapping
from typing import Any

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
    RefundResult,
    Refunds,
    RouteToken,
    SettingProblem,
    Settlement,
    UrlToken,
    WalletBalances,
)
from payments.providers.mtn import balance, checks, collection, disbursement, refunds
from payments.providers.mtn.client import MtnClient, Product, new_reference_id
from payments.providers.mtn.codes import (
    ACK,
    COLLECTION,
    COLLECTION_KIND,
    CURRENCIES,
    CURRENCY_REGIONS,
    DISBURSEMENT,
    DISBURSEMENT_KIND,
    REFUND_KIND,
    REMITTANCE_KIND,
    SANDBOX_CURRENCY,
    SANDBOX_TARGET_ENVIRONMENT,
    TEST_NUMBERS,
)

# "Allow PUT & POST on your callback listener host": MTN's pages name both, per operation.
PUT_OR_POST = ("post", "put")


class MtnProvider(PaymentProvider, Collections, Payouts, Refunds, WalletBalances):
    code = "mtn"
    display_name = "MTN MoMo"
    public_name = "mtn_mobile_money"
    # The class declares MTN's sandbox currency; each instance takes MTN_CURRENCY (see __init__).
    currencies = frozenset({SANDBOX_CURRENCY})
    payout_currencies = frozenset({SANDBOX_CURRENCY})
    whole_amounts_only = True
    refunds_partial = True
    # MTN calls back once and never again; its status GET, by the X-Reference-Id we chose, is the backstop.
    payout_settled_by = frozenset({Settlement.CALLBACK, Settlement.STATUS_QUERY})
    refund_settled_by = frozenset({Settlement.CALLBACK, Settlement.STATUS_QUERY})
    # The payment's secret goes in the collection URL (X-Callback-Url); the bare paths answer too (never
    # trusted on their word: nothing MTN sends is).
    callback_routes = (
        CallbackRoute(
            COLLECTION_KIND, CallbackRole.PAYMENT, "webhooks/mtn/collection", "mtn-collection", methods=PUT_OR_POST
        ),
        CallbackRoute(
            DISBURSEMENT_KIND,
            CallbackRole.PAYOUT_RESULT,
            "webhooks/mtn/disbursement",
            "mtn-disbursement",
            methods=PUT_OR_POST,
        ),
        CallbackRoute(
            REMITTANCE_KIND, CallbackRole.NOTICE, "webhooks/mtn/remittance", "mtn-remittance", methods=PUT_OR_POST
        ),
        CallbackRoute(
            REFUND_KIND,
            CallbackRole.REFUND_RESULT,
            "webhooks/mtn/refund",
            "mtn-refund",
            RouteToken.OPTIONAL,
            PUT_OR_POST,
        ),
    )

    def __init__(
        self,
        *,
        api_url: str,
        api_user: str,
        api_key: str,
        collection_subscription_key: str,
        target_environment: str = SANDBOX_TARGET_ENVIRONMENT,
        disbursement_subscription_key: str = "",
        disbursement_api_user: str = "",
        disbursement_api_key: str = "",
        currency: str = "UGX",
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ):
        self.api_url = api_url
        self.target_environment = (target_environment or SANDBOX_TARGET_ENVIRONMENT).strip()
        self.refuse_invalid_settings({"currency": currency})
        self.currency = (currency or "").strip().upper()
        self.disbursement_subscription_key = disbursement_subscription_key
        self.client = MtnClient(
            api_url=api_url,
            target_environment=self.target_environment,
            products=(
                Product(COLLECTION, collection_subscription_key, api_user, api_key),
                Product(
                    DISBURSEMENT,
                    disbursement_subscription_key,
                    disbursement_api_user or api_user,
                    disbursement_api_key or api_key,
                ),
            ),
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        self.collection = collection.CollectionSettings(currency=self.currency)
        # Configured per deployment, so per instance: the contracts declare these as class variables.
        self.currencies = frozenset({self.currency})
        self.payout_currencies = frozenset({self.currency})
        self.phone_regions = CURRENCY_REGIONS.get(self.currency, frozenset())

    def is_test_number(self, msisdn: str) -> bool:
        return msisdn in TEST_NUMBERS

    @classmethod
    def settings_problems(cls, config: Mapping[str, Any]) -> list[SettingProblem]:
        raw = config.get("currency", "UGX")
        currency = str(raw or "").strip().upper()
        if currency in CURRENCIES:
            return []
        return [
            SettingProblem(
                "payments.E003",
                "MTN_CURRENCY",
                f"MTN_CURRENCY={raw!r} is not a currency MTN MoMo collects ({', '.join(sorted(CURRENCIES))}): "
                "MTN MoMo cannot be used.",
                "The currency of your MTN_TARGET_ENVIRONMENT's market (mtnuganda: UGX, mtnghana: GHS, …; "
                "EUR with sandbox).",
            )
        ]

    @property
    def tokens(self) -> dict:
        return self.client.tokens

    def access_token(self, product: str = COLLECTION) -> str:
        return self.client.access_token(product)

    # --- Collections: request to pay ------------------------------------------------------------------

    def payment_methods(self) -> tuple[PaymentMethod, ...]:
        return (PaymentMethod(self.code, "", "MTN MoMo", self.currencies),)

    def reference_before_request(self) -> str:
        return new_reference_id()

    def start_charge(self, charge: ChargeRequest) -> ProviderResult:
        return collection.request_to_pay(self.client, self.collection, charge)

    def fetch_status(self, ref: PaymentRef) -> ProviderResult:
        return collection.payment_status(self.client, ref)

    def parse_callback(self, kind: str, body: bytes, headers: Mapping[str, str]) -> ProviderResult:
        if kind != COLLECTION_KIND:
            raise CallbackMalformed(f"MTN MoMo callbacks of kind {kind!r} are not payment callbacks")
        return collection.parse_callback(body)

    # --- Payouts: disbursement transfers ----------------------------------------------------------------

    def payout_reference_before_request(self, reference: str) -> str:
        return new_reference_id()

    def send_payout(self, payout: PayoutRequest) -> PayoutAccepted:
        return disbursement.transfer(self.client, payout, currency=self.currency)

    def payout_status(self, *, reference: str, provider_reference: str) -> PayoutResult:
        return disbursement.transfer_status(self.client, reference=reference, provider_reference=provider_reference)

    def parse_payout_result(self, kind: str, body: bytes) -> PayoutResult:
        if kind != DISBURSEMENT_KIND:
            raise CallbackMalformed(f"MTN MoMo callbacks of kind {kind!r} are not payout results")
        return disbursement.parse_transfer_result(body)

    # --- Refunds ------------------------------------------------------------------------------------------

    def refund_reference_before_request(self) -> str:
        return new_reference_id()

    def send_refund(self, refund: RefundRequest) -> RefundAccepted:
        return refunds.refund(self.client, refund, currency=self.currency)

    def refund_status(self, *, reference: str, provider_reference: str) -> RefundResult:
        return refunds.refund_status(self.client, reference=reference, provider_reference=provider_reference)

    def parse_refund_result(self, kind: str, body: bytes) -> RefundResult:
        if kind != REFUND_KIND:
            raise CallbackMalformed(f"MTN MoMo callbacks of kind {kind!r} are not refund results")
        return refunds.parse_refund_result(body)

    # --- every provider ---------------------------------------------------------------------------------

    # --- the month close: each product's balance ------------------------------------------------------

    balance_accounts = (COLLECTION, DISBURSEMENT)

    def request_balance(self, *, account: str, result_url: str = "", timeout_url: str = "") -> BalanceAnswer:
        return balance.request_balance(self.client, account)

    def authenticate_callback(self, callback: RawCallback) -> CallbackTrust:
        """MTN signs nothing: a URL secret we never issued is a forgery; anything else is a trigger for the
        status query, never believed on its word."""
        if callback.url_token == UrlToken.INVALID:
            return CallbackTrust.REJECTED
        return CallbackTrust.UNVERIFIED

    def ack(self, kind: str, accepted: bool) -> tuple[int, dict]:
        # MTN documents no reply contract and never retries: any fast 2xx.
        return 200, dict(ACK)

    def deploy_warnings(self, *, site_url: str) -> list[DeployWarning]:
        return checks.deploy_warnings(self, site_url=site_url)
