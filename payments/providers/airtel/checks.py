"""`manage.py check --deploy` for airtel: the weak production settings of this rail, one warning each.

Kept out of provider.py (which translates and talks HTTP) because the list grows with every setting an
operator can get wrong; `AirtelProvider.deploy_warnings` delegates here.
"""

from typing import TYPE_CHECKING

from payments.providers.airtel.codes import UAT_HOST_MARK
from payments.providers.base import DeployWarning

if TYPE_CHECKING:
    from payments.providers.airtel.provider import AirtelProvider


def deploy_warnings(provider: "AirtelProvider", *, site_url: str) -> list[DeployWarning]:
    """Nothing while the rail is off (no AIRTEL_CLIENT_ID); else unauthenticated callbacks, a PIN without a
    pinned key, Airtel's test host, and plain-HTTP URLs."""
    if not provider.client.client_id:
        return []
    warnings = []
    if not provider.hash_secret:
        warnings.append(
            DeployWarning(
                "payments.W030",
                "AIRTEL_CALLBACK_SECRET is empty: Airtel Money callbacks are not authenticated at all (each is "
                "still confirmed by the transaction enquiry before it credits).",
                "Enable callback authentication on Airtel's portal and set AIRTEL_CALLBACK_SECRET to its key.",
            )
        )
    if provider.disbursement.pin and not provider.client.configured_key:
        warnings.append(
            DeployWarning(
                "payments.W031",
                "AIRTEL_DISBURSEMENT_PIN is set but AIRTEL_PUBLIC_KEY is empty: the PIN is encrypted with "
                "whatever key GET /v1/rsa/encryption-keys returns.",
                "Set AIRTEL_PUBLIC_KEY to the RSA public key from Airtel's portal.",
            )
        )
    if not site_url.startswith("https://"):
        warnings.append(
            DeployWarning(
                "payments.W032",
                "The Airtel Money callback URL set on Airtel's portal would be a non-HTTPS URL.",
                "Set SITE_URL to the public https:// address and register "
                "https://<host>/webhooks/airtel/payment/ on Airtel's portal.",
            )
        )
    if UAT_HOST_MARK in provider.api_url:
        warnings.append(
            DeployWarning(
                "payments.W033",
                "AIRTEL_API_URL points at Airtel's UAT (test) host.",
                "Set AIRTEL_API_URL=https://openapi.airtel.africa (or your country's production host).",
            )
        )
    if not provider.api_url.startswith("https://"):
        warnings.append(
            DeployWarning(
                "payments.W034",
                "AIRTEL_API_URL is not HTTPS: credentials and PINs would travel in clear.",
                "Use Airtel's https:// host.",
            )
        )
    return warnings
