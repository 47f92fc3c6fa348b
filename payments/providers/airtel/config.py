"""Airtel Money's settings (read by config/settings.py) and the simulator's test values.

Airtel publishes no sandbox numbers or shared test credentials (docs/providers/airtel.md, "Sandbox test
values"): the values below are our simulator's own (`manage.py sandbox`, under /airtel)."""

from payments.providers.config import ProviderConfig, Setting

SANDBOX_CLIENT_ID = "sandbox-airtel-client-id"
SANDBOX_CLIENT_SECRET = "sandbox-airtel-client-secret"  # noqa: S105 (the simulator's public test value)
SANDBOX_CALLBACK_SECRET = "sandbox-airtel-callback-secret"  # noqa: S105 (the simulator's public test value)
SANDBOX_DISBURSEMENT_PIN = "1234"

CONFIG = ProviderConfig(
    code="airtel",
    real_when="AIRTEL_CLIENT_ID",
    settings=(
        Setting("api_url", "AIRTEL_API_URL", default="https://openapiuat.airtel.africa"),
        Setting("client_id", "AIRTEL_CLIENT_ID", sandbox=SANDBOX_CLIENT_ID),
        Setting("client_secret", "AIRTEL_CLIENT_SECRET", sandbox=SANDBOX_CLIENT_SECRET),
        # The routing headers X-Country / X-Currency of every business call; the one currency collected.
        Setting("country", "AIRTEL_COUNTRY", default="UG"),
        Setting("currency", "AIRTEL_CURRENCY", default="UGX"),
        # The key of the callback `hash` (Airtel's portal, "callback authentication"); empty: not checked.
        Setting("callback_secret", "AIRTEL_CALLBACK_SECRET", sandbox=SANDBOX_CALLBACK_SECRET),
        # Path version and message signing are two independent switches (docs/providers/airtel.md).
        Setting("collection_path", "AIRTEL_COLLECTION_PATH", default="/merchant/v1/payments/"),
        Setting("sign_requests", "AIRTEL_SIGN_REQUESTS", default=False, cast=bool),
        # Airtel's RSA public key (PEM or bare base64 DER, literal \n allowed): the disbursement PIN and the
        # signing key. Empty: fetched from GET /v1/rsa/encryption-keys (the simulator serves its own there).
        Setting("public_key_pem", "AIRTEL_PUBLIC_KEY"),
        Setting("disbursement_pin", "AIRTEL_DISBURSEMENT_PIN", sandbox=SANDBOX_DISBURSEMENT_PIN),
        Setting("pin_padding", "AIRTEL_PIN_PADDING", default="pkcs1"),  # or "oaep" (SHA-1), one library's choice
    ),
    sandbox_urls={"api_url": "/airtel"},
)
