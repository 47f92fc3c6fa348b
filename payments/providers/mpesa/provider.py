"""MpesaProvider: the class the registry knows. Collections (STK push), Paybill (C2B), Payouts (B2C), Refunds
(reversal), and for the month close WalletBalances (Account Balance) and StatementPull (Pull Transactions),
each delegated to its module; HTTP and translation only."""

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from payments.providers.base import (
    BalanceAnswer,
    BalanceResult,
    CallbackMalformed,
    CallbackRole,
    CallbackRoute,
    CallbackTrust,
    ChargeRequest,
    Collections,
    DeployWarning,
    Paybill,
    PaybillPayment,
    PaybillRejection,
    PaymentMethod,
    PaymentProvider,
    PaymentRef,
    PayoutAccepted,
    PayoutRequest,
    PayoutResult,
    Payouts,
    ProviderResult,
    PulledTransaction,
    RawCallback,
    RefundAccepted,
    RefundRequest,
    RefundResult,
    Refunds,
    RouteToken,
    SettingProblem,
    StatementPull,
    WalletBalances,
)
from payments.providers.mpesa import checks, ledger, paybill, payouts, reversal, stk, trust
from payments.providers.mpesa.client import DarajaClient
from payments.providers.mpesa.codes import (
    ACCEPTED,
    B2C_RESULT,
    B2C_TIMEOUT,
    BALANCE_RESULT,
    BALANCE_TIMEOUT,
    BUY_GOODS,
    C2B_CONFIRMATION,
    C2B_KINDS,
    C2B_VALIDATION,
    CURRENCY,
    INITIATOR_KINDS,
    MAX_TRANSACTION_DESC,
    PAYBILL,
    PULL_NOTICE,
    REVERSAL_RESULT,
    REVERSAL_TIMEOUT,
    SAFE_TEXT_RE,
    STK_KIND,
    TRANSACTION_TYPES,
)

# Daraja POSTs; the STK URLs have always also taken PUT (the one callback view did), and still do.
POST_OR_PUT = ("post", "put")


class MpesaProvider(PaymentProvider, Collections, Paybill, Payouts, Refunds, WalletBalances, StatementPull):
    code = "mpesa"
    display_name = "M-Pesa"
    public_name = "mpesa"
    currencies = frozenset({CURRENCY})
    phone_regions = frozenset({"KE"})  # Safaricom's M-Pesa: Kenyan 2547…/2541… numbers
    whole_amounts_only = True
    paybill_currency = CURRENCY
    payout_currencies = frozenset({CURRENCY})
    balance_accounts = ("shortcode",)  # one query answers every account of the paybill shortcode
    balance_is_asynchronous = True
    pull_window = timedelta(hours=48)  # Daraja keeps C2B transactions this long for pulling
    pull_currency = CURRENCY
    # For each kind, the first route is the one we hand to Daraja. Daraja refuses C2B URLs containing
    # "mpesa", so the paybill URLs we register are /webhooks/paybill/…; the /webhooks/mpesa/… paths answer too.
    # /webhooks/stk/ is a neutral STK path for MPESA_CALLBACK_URL (the STK processor is reported to refuse
    # "mpesa" in URLs as well).
    callback_routes = (
        CallbackRoute(STK_KIND, CallbackRole.PAYMENT, "webhooks/mpesa/stkpush", "mpesa-stkpush", methods=POST_OR_PUT),
        CallbackRoute(STK_KIND, CallbackRole.PAYMENT, "webhooks/stk", "stk-callback", methods=POST_OR_PUT),
        CallbackRoute(
            C2B_VALIDATION,
            CallbackRole.PAYBILL_VALIDATION,
            "webhooks/paybill/validation",
            "paybill-validation",
            RouteToken.REQUIRED,
        ),
        CallbackRoute(
            C2B_VALIDATION, CallbackRole.PAYBILL_VALIDATION, "webhooks/mpesa/c2b/validation", "mpesa-c2b-validation"
        ),
        CallbackRoute(
            C2B_CONFIRMATION,
            CallbackRole.PAYBILL_CONFIRMATION,
            "webhooks/paybill/confirmation",
            "paybill-confirmation",
            RouteToken.REQUIRED,
        ),
        CallbackRoute(
            C2B_CONFIRMATION,
            CallbackRole.PAYBILL_CONFIRMATION,
            "webhooks/mpesa/c2b/confirmation",
            "mpesa-c2b-confirmation",
        ),
        CallbackRoute(B2C_RESULT, CallbackRole.PAYOUT_RESULT, "webhooks/mpesa/b2c/result", "mpesa-b2c-result"),
        CallbackRoute(B2C_TIMEOUT, CallbackRole.PAYOUT_TIMEOUT, "webhooks/mpesa/b2c/timeout", "mpesa-b2c-timeout"),
        CallbackRoute(
            REVERSAL_RESULT, CallbackRole.REFUND_RESULT, "webhooks/mpesa/reversal/result", "mpesa-reversal-result"
        ),
        CallbackRoute(
            REVERSAL_TIMEOUT, CallbackRole.REFUND_TIMEOUT, "webhooks/mpesa/reversal/timeout", "mpesa-reversal-timeout"
        ),
        # Account Balance: its result and its queue timeout, both read as a balance result (finance records it).
        CallbackRoute(
            BALANCE_RESULT, CallbackRole.BALANCE_RESULT, "webhooks/mpesa/balance/result", "mpesa-balance-result"
        ),
        CallbackRoute(
            BALANCE_TIMEOUT, CallbackRole.BALANCE_TIMEOUT, "webhooks/mpesa/balance/timeout", "mpesa-balance-timeout"
        ),
        CallbackRoute(PULL_NOTICE, CallbackRole.NOTICE, "webhooks/mpesa/pull/notice", "mpesa-pull-notice"),
    )

    def __init__(
        self,
        *,
        consumer_key: str,
        consumer_secret: str,
        shortcode: str,
        passkey: str,
        api_url: str,
        transaction_type: str = PAYBILL,
        party_b: str = "",
        callback_url: str = "",
        trust_callbacks: bool = False,
        allowed_ips: Iterable[str] = (),
        ip_allowlist_strict: bool = False,
        transaction_desc: str = "Donation",
        c2b_shortcode: str = "",
        c2b_token: str = "",
        b2c_shortcode: str = "",
        b2c_token: str = "",
        initiator_name: str = "",
        security_credential: str = "",
        pull_nominated_number: str = "",
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ):
        self.refuse_invalid_settings({"transaction_type": transaction_type})
        shortcode = str(shortcode)
        self.client = DarajaClient(
            api_url=api_url,
            consumer_key=consumer_key,
            consumer_secret=consumer_secret,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        self.stk = stk.StkSettings(
            shortcode=shortcode,
            passkey=passkey,
            transaction_type=transaction_type,
            party_b=str(party_b or shortcode),
            transaction_desc=SAFE_TEXT_RE.sub("", transaction_desc)[:MAX_TRANSACTION_DESC] or "Donation",
            callback_url_override=callback_url.strip(),
        )
        self.trust = trust.TrustPolicy.build(
            trust_callbacks=trust_callbacks, allowed_ips=allowed_ips, ip_allowlist_strict=ip_allowlist_strict
        )
        self.c2b_shortcode = str(c2b_shortcode or shortcode)
        self.b2c = payouts.B2CSettings(str(b2c_shortcode or shortcode), initiator_name, security_credential)
        self.pull_nominated_number = str(pull_nominated_number or "")
        self._secrets = {**dict.fromkeys(C2B_KINDS, c2b_token), **dict.fromkeys(INITIATOR_KINDS, b2c_token)}

    @classmethod
    def settings_problems(cls, config: Mapping[str, Any]) -> list[SettingProblem]:
        transaction_type = config.get("transaction_type", PAYBILL)
        if transaction_type in TRANSACTION_TYPES:
            return []
        return [
            SettingProblem(
                "payments.E002",
                "MPESA_TRANSACTION_TYPE",
                f"MPESA_TRANSACTION_TYPE={transaction_type!r} is not one of Daraja's transaction types "
                f"({', '.join(TRANSACTION_TYPES)}): M-Pesa cannot be used.",
                f"{PAYBILL} for a paybill, {BUY_GOODS} for a till (with MPESA_TILL_NUMBER); spelt exactly so.",
            )
        ]

    @property
    def tokens(self):
        return self.client.tokens

    def access_token(self) -> str:
        return self.client.access_token()

    # --- Collections: STK push ------------------------------------------------------------------------

    def payment_methods(self) -> tuple[PaymentMethod, ...]:
        return (PaymentMethod(self.code, "", "M-Pesa (Safaricom)", self.currencies),)

    def start_charge(self, charge: ChargeRequest) -> ProviderResult:
        return stk.stk_push(self.client, self.stk, charge)

    def fetch_status(self, ref: PaymentRef) -> ProviderResult:
        return stk.stk_query(self.client, self.stk, ref)

    def parse_callback(self, kind: str, body: bytes, headers: Mapping[str, str]) -> ProviderResult:
        if kind != STK_KIND:
            raise CallbackMalformed(f"M-Pesa callbacks of kind {kind!r} are not payment callbacks")
        return stk.parse_stk_callback(body)

    # --- Paybill: C2B -----------------------------------------------------------------------------------

    @property
    def paybill_shortcode(self) -> str:
        return self.c2b_shortcode

    def parse_paybill(self, body: bytes) -> PaybillPayment:
        return paybill.parse_c2b(body)

    def paybill_answer(self, rejection: PaybillRejection | None) -> dict:
        return paybill.validation_answer(rejection)

    def register_paybill_urls(self, *, confirmation_url: str, validation_url: str, response_type: str) -> dict:
        return paybill.register_urls(
            self.client,
            shortcode=self.c2b_shortcode,
            confirmation_url=confirmation_url,
            validation_url=validation_url,
            response_type=response_type,
        )

    # --- Payouts: B2C -----------------------------------------------------------------------------------

    def send_payout(self, payout: PayoutRequest) -> PayoutAccepted:
        return payouts.send(self.client, self.b2c, payout)

    def parse_payout_result(self, kind: str, body: bytes) -> PayoutResult:
        return payouts.parse_result(body)

    # --- Refunds: Transaction Reversal ------------------------------------------------------------------

    def send_refund(self, refund: RefundRequest) -> RefundAccepted:
        return reversal.send(self.client, self.b2c, self.stk.shortcode, refund)

    def parse_refund_result(self, kind: str, body: bytes) -> RefundResult:
        return reversal.parse_result(body)

    # --- the month close: Account Balance and Pull Transactions ------------------------------------------

    def request_balance(self, *, account: str, result_url: str = "", timeout_url: str = "") -> BalanceAnswer:
        initiator = ledger.Initiator(self.c2b_shortcode, self.b2c.initiator_name, self.b2c.security_credential)
        return ledger.request_balance(self.client, initiator, result_url=result_url, timeout_url=timeout_url)

    def parse_balance_result(self, kind: str, body: bytes) -> BalanceResult:
        return ledger.parse_balance_result(body)

    def register_pull(self, *, callback_url: str) -> str:
        return ledger.register_pull(
            self.client,
            shortcode=self.c2b_shortcode,
            nominated_number=self.pull_nominated_number,
            callback_url=callback_url,
        )

    def pull_transactions(self, *, start: datetime, end: datetime, offset: int) -> tuple[PulledTransaction, ...]:
        return ledger.pull_page(self.client, shortcode=self.c2b_shortcode, start=start, end=end, offset=offset)

    # --- every provider ---------------------------------------------------------------------------------

    def callback_secret(self, kind: str) -> str | None:
        return self._secrets.get(kind)  # STK: None, the secret is the payment's own token

    def authenticate_callback(self, callback: RawCallback) -> CallbackTrust:
        return trust.authenticate(self.trust, callback)

    def ack(self, kind: str, accepted: bool) -> tuple[int, dict]:
        # Daraja does not retry on our answer; it only wants a fast 200.
        if kind == C2B_VALIDATION:
            return 200, paybill.validation_answer(None if accepted else PaybillRejection.OTHER)
        return 200, dict(ACCEPTED)

    def deploy_warnings(self, *, site_url: str) -> list[DeployWarning]:
        return checks.deploy_warnings(self, site_url=site_url)
