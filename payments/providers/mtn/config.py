"""MTN MoMo's settings (read by config/settings.py) and the simulator's test values.

One API user and key serve both products unless MTN_DISBURSEMENT_API_USER/_KEY are set; each product has its
own subscription key. With the local simulator the currency is EUR, as in MTN's own sandbox (production: the
country's currency with `X-Target-Environment: mtn<country>`).
"""

from payments.providers.config import ProviderConfig, Setting

SANDBOX_API_USER = "6f2b7d8e-3c41-4a5e-9b0d-1e2f3a4b5c6d"  # MTN API users are UUIDs (the simulator's own)

CONFIG = ProviderConfig(
    code="mtn",
    real_when="MTN_API_USER",
    settings=(
        Setting("api_url", "MTN_API_URL", default="https://sandbox.momodeveloper.mtn.com"),
        Setting("target_environment", "MTN_TARGET_ENVIRONMENT", default="sandbox"),
        Setting(
            "collection_subscription_key",
            "MTN_COLLECTION_SUBSCRIPTION_KEY",
            sandbox="sandbox-collection-subscription-key",
        ),
        Setting("api_user", "MTN_API_USER", sandbox=SANDBOX_API_USER),
        Setting("api_key", "MTN_API_KEY", sandbox="sandbox-api-key"),
        Setting(
            "disbursement_subscription_key",
            "MTN_DISBURSEMENT_SUBSCRIPTION_KEY",
            sandbox="sandbox-disbursement-subscription-key",
        ),
        # Empty: the Disbursement product uses MTN_API_USER / MTN_API_KEY.
        Setting("disbursement_api_user", "MTN_DISBURSEMENT_API_USER"),
        Setting("disbursement_api_key", "MTN_DISBURSEMENT_API_KEY"),
        Setting("currency", "MTN_CURRENCY", default="UGX", sandbox="EUR"),
    ),
    sandbox_urls={"api_url": "/mtn"},
)
