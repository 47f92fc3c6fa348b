"""`manage.py check --deploy` for mtn: the weak production settings of this rail, one warning each.

Kept out of provider.py (which translates and talks HTTP) because the list grows with every setting an
operator can get wrong; `MtnProvider.deploy_warnings` delegates here.
"""

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from payments.providers.base import DeployWarning
from payments.providers.mtn.codes import (
    COLLECTION,
    LEGACY_HOSTS,
    PRODUCTION_HOST,
    SANDBOX_CURRENCY,
    SANDBOX_HOST,
    SANDBOX_TARGET_ENVIRONMENT,
)

if TYPE_CHECKING:
    from payments.providers.mtn.provider import MtnProvider

SIMULATOR_PATH = "/mtn"  # config.CONFIG.sandbox_urls: the API URL when PAYMENTS_SANDBOX_URL points here


def deploy_warnings(provider: "MtnProvider", *, site_url: str) -> list[DeployWarning]:
    warnings = []
    host = (urlsplit(provider.api_url).hostname or "").lower()
    simulator = urlsplit(provider.api_url).path.rstrip("/") == SIMULATOR_PATH  # payments.W001 says so already
    sandbox_environment = provider.target_environment == SANDBOX_TARGET_ENVIRONMENT
    if sandbox_environment and not simulator:
        warnings.append(
            DeployWarning(
                "payments.W020",
                "MTN_TARGET_ENVIRONMENT is 'sandbox': MTN MoMo's test environment, where no real money moves.",
                "Set MTN_TARGET_ENVIRONMENT to your country's (mtnuganda, mtnghana, …), "
                f"MTN_API_URL=https://{PRODUCTION_HOST} and the production API user and keys.",
            )
        )
    if (host == SANDBOX_HOST and not sandbox_environment) or (host == PRODUCTION_HOST and sandbox_environment):
        warnings.append(
            DeployWarning(
                "payments.W021",
                f"MTN_API_URL ({host}) and MTN_TARGET_ENVIRONMENT ({provider.target_environment}) do not match.",
                f"Production: https://{PRODUCTION_HOST} with mtn<country>; sandbox: https://{SANDBOX_HOST} "
                "with sandbox.",
            )
        )
    if host in LEGACY_HOSTS:
        warnings.append(
            DeployWarning(
                "payments.W022",
                f"MTN_API_URL points at {host}, MTN's retired host.",
                f"Use https://{PRODUCTION_HOST} (production) or https://{SANDBOX_HOST} (sandbox).",
            )
        )
    if not site_url.startswith("https://"):
        warnings.append(
            DeployWarning(
                "payments.W023",
                "MTN MoMo callbacks would go to a non-HTTPS URL; MTN delivers production callbacks only over "
                "HTTPS with a certificate from its approved CA list.",
                "Set SITE_URL to the public https:// address (its host must be the API user's providerCallbackHost).",
            )
        )
    if not provider.disbursement_subscription_key:
        warnings.append(
            DeployWarning(
                "payments.W024",
                "MTN_DISBURSEMENT_SUBSCRIPTION_KEY is empty: MTN MoMo payouts and refunds will be refused.",
                "Subscribe to the Disbursement product and set its key (it differs from the Collection key).",
            )
        )
    if sandbox_environment and provider.currency != SANDBOX_CURRENCY:
        warnings.append(
            DeployWarning(
                "payments.W025",
                f"MTN_CURRENCY is {provider.currency} with the 'sandbox' target environment, which takes EUR only.",
                "Use EUR with MTN's sandbox, or the production target environment of your currency's country.",
            )
        )
    collection_product = provider.client.products[COLLECTION]
    if not (collection_product.api_user and collection_product.api_key and collection_product.subscription_key):
        warnings.append(
            DeployWarning(
                "payments.W026",
                "MTN_API_USER, MTN_API_KEY or MTN_COLLECTION_SUBSCRIPTION_KEY is empty: MTN MoMo cannot collect.",
                "Set the API user and key issued in MTN's partner portal and the Collection subscription key.",
            )
        )
    return warnings
