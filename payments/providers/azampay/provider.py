"""AzamPayProvider: the class the registry knows. It holds the configuration and delegates to the modules
of this package; it does HTTP and translation only."""

from collections.abc import Mapping

from payments.providers.azampay import callbacks, checkout, checks
from payments.providers.azampay.client import AzamPayClient
from payments.providers.azampay.codes import (
    BANK_CHANNEL,
    BANK_CHANNELS,
    CARD_CHANNEL,
    CHANNEL_LABELS,
    CURRENCY,
    MNO_CHANNELS,
    normalize_channel,
)
from payments.providers.azampay.status import StatusEndpoint, fetch_status
from payments.providers.base import (
    CallbackRole,
    CallbackRoute,
    CallbackTrust,
    ChargeRequest,
    Collections,
    DeployWarning,
    PaymentMethod,
    PaymentProvider,
    PaymentRef,
    ProviderError,
    ProviderResult,
    RawCallback,
    RouteToken,
)

PAYMENT_KIND = "payment"


class AzamPayProvider(PaymentProvider, Collections):
    code = "azampay"
    display_name = "AzamPay"
    public_name = "azampay"
    currencies = frozenset({CURRENCY})
    phone_regions = frozenset({"TZ"})  # Tanzania's mobile money networks
    whole_amounts_only = True
    # AzamPay calls the one URL set on its dashboard: no secret of ours can be in it.
    callback_routes = (
        CallbackRoute(
            PAYMENT_KIND,
            CallbackRole.PAYMENT,
            "api/v1.0/donors/payment/azampay/callback",
            "azampay-callback",
            RouteToken.NONE,
            ("post", "put"),
        ),
    )

    def __init__(
        self,
        *,
        app_name: str,
        client_id: str,
        client_secret: str,
        auth_url: str,
        api_url: str,
        api_key: str = "",
        vendor_id: str = "",
        callback_password: str = "",
        public_key_pem: str = "",
        require_signature: bool = False,
        status_path: str = "/azampay/gettransactionstatus",
        status_id_param: str = "pgReferenceId",
        status_provider_param: str = "bankName",
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ):
        self.client = AzamPayClient(
            app_name=app_name,
            client_id=client_id,
            client_secret=client_secret,
            auth_url=auth_url,
            api_url=api_url,
            api_key=api_key,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        self.vendor_id = vendor_id
        self.callback_auth = callbacks.CallbackAuth(callback_password, public_key_pem, require_signature)
        self.status_endpoint = StatusEndpoint(status_path, status_id_param, status_provider_param)

    # The token lives in the client; these names are what operators and tests reach for.
    @property
    def tokens(self):
        return self.client.tokens

    def access_token(self) -> str:
        return self.client.access_token()

    # --- Collections ----------------------------------------------------------------------------------

    def payment_methods(self) -> tuple[PaymentMethod, ...]:
        mno = tuple(PaymentMethod(self.code, c, CHANNEL_LABELS[c], self.currencies) for c in MNO_CHANNELS)
        card = PaymentMethod(self.code, CARD_CHANNEL, CHANNEL_LABELS[CARD_CHANNEL], self.currencies, needs_phone=False)
        bank = PaymentMethod(
            self.code,
            BANK_CHANNEL,
            CHANNEL_LABELS[BANK_CHANNEL],
            self.currencies,
            api_only=True,
            extra_fields=("bank", "account_number", "account_name", "otp"),
            extra_choices=(("bank", BANK_CHANNELS),),
        )
        return (*mno, card, bank)

    def normalize_channel(self, channel: str) -> str | None:
        return normalize_channel(channel) or None

    def external_id(self, reference: str, channel: str) -> str:
        # PostCheckout allows 30 characters; the MNO and bank calls allow 128.
        return checkout.hosted_external_id(reference) if normalize_channel(channel) == CARD_CHANNEL else reference

    def start_charge(self, charge: ChargeRequest) -> ProviderResult:
        if charge.currency != CURRENCY:
            raise ProviderError("AzamPay collects Tanzanian shillings (TZS) only.")
        if charge.amount != charge.amount.to_integral_value():
            raise ProviderError("AzamPay takes whole shillings only.")
        channel = normalize_channel(charge.channel)
        if channel == CARD_CHANNEL:
            return checkout.hosted_checkout(self.client, charge, vendor_id=self.vendor_id)
        if channel == BANK_CHANNEL:
            return checkout.bank_checkout(self.client, charge)
        if channel not in MNO_CHANNELS:
            raise ProviderError(f"Unknown AzamPay channel {charge.channel!r}.")
        return checkout.mno_checkout(self.client, charge, channel)

    def fetch_status(self, ref: PaymentRef) -> ProviderResult:
        return fetch_status(self.client, self.status_endpoint, ref)

    def parse_callback(self, kind: str, body: bytes, headers: Mapping[str, str]) -> ProviderResult:
        return callbacks.parse_callback(body)

    # --- every provider -------------------------------------------------------------------------------

    def authenticate_callback(self, callback: RawCallback) -> CallbackTrust:
        return callbacks.authenticate(self.callback_auth, callback.body)

    def ack(self, kind: str, accepted: bool) -> tuple[int, dict]:
        return 200, {"success": True, "message": "Callback received"}

    def redact(self, body: bytes) -> str:
        return callbacks.redact(body)

    def deploy_warnings(self, *, site_url: str) -> list[DeployWarning]:
        return checks.deploy_warnings(self, site_url=site_url)
