"""AzamPay's settings (read by config/settings.py) and the sandbox's built-in test credentials."""

from payments.providers.config import ProviderConfig, Setting

SANDBOX_CALLBACK_PASSWORD = "sandbox-callback-password"  # noqa: S105 (the simulator's public test value)

CONFIG = ProviderConfig(
    code="azampay",
    real_when="AZAMPAY_CLIENT_ID",
    settings=(
        Setting("app_name", "AZAMPAY_APP_NAME", sandbox="sandbox-app"),
        Setting("client_id", "AZAMPAY_CLIENT_ID", sandbox="sandbox-client-id"),
        Setting("client_secret", "AZAMPAY_CLIENT_SECRET", sandbox="sandbox-client-secret"),
        Setting("api_key", "AZAMPAY_API_KEY", sandbox="sandbox-api-key"),
        Setting("vendor_id", "AZAMPAY_VENDOR_ID", sandbox="sandbox-vendor"),
        Setting("auth_url", "AZAMPAY_AUTH_URL", default="https://authenticator-sandbox.azampay.co.tz"),
        Setting("api_url", "AZAMPAY_API_URL", default="https://sandbox.azampay.co.tz"),
        # The dashboard's callback password, echoed in every callback: what makes a callback trusted.
        Setting("callback_password", "AZAMPAY_CALLBACK_PASSWORD", sandbox=SANDBOX_CALLBACK_PASSWORD),
        Setting("public_key_pem", "AZAMPAY_PUBLIC_KEY"),
        Setting("require_signature", "AZAMPAY_REQUIRE_SIGNATURE", default=False, cast=bool),
        # AzamPay has published more than one status endpoint: its path and parameter names are settings.
        Setting("status_path", "AZAMPAY_STATUS_PATH", default="/azampay/gettransactionstatus"),
        Setting("status_id_param", "AZAMPAY_STATUS_ID_PARAM", default="pgReferenceId"),
        Setting("status_provider_param", "AZAMPAY_STATUS_PROVIDER_PARAM", default="bankName"),
    ),
    sandbox_urls={"auth_url": "/azampay-auth", "api_url": "/azampay"},
)
