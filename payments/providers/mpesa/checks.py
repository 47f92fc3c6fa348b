"""`manage.py check --deploy` for mpesa: the weak production settings of this rail, one warning each.

Kept out of provider.py (which translates and talks HTTP) because the list grows with every setting an
operator can get wrong; `MpesaProvider.deploy_warnings` delegates here.
"""

from typing import TYPE_CHECKING

from payments.providers.base import DeployWarning
from payments.providers.mpesa.codes import B2C_RESULT, C2B_CONFIRMATION

if TYPE_CHECKING:
    from payments.providers.mpesa.provider import MpesaProvider


def deploy_warnings(provider: "MpesaProvider", *, site_url: str) -> list[DeployWarning]:
    """Daraja signs nothing: crediting on a callback's word, or a callback URL Daraja refuses, is weak."""
    warnings = []
    if provider.trust.trust_callbacks:
        warnings.append(
            DeployWarning(
                "payments.W003",
                "MPESA_TRUST_CALLBACKS is on: an unsigned M-Pesa callback on its token URL credits a donation "
                "without the STK Push Query confirming it.",
                "Leave MPESA_TRUST_CALLBACKS off; the query costs one request per payment.",
            )
        )
    if not provider.trust.allowed_networks:
        warnings.append(
            DeployWarning(
                "payments.W004",
                "MPESA_ALLOWED_IPS is empty: M-Pesa callbacks from unexpected addresses are not even logged.",
                "Set MPESA_ALLOWED_IPS to Safaricom's callback addresses (see .env.production.example).",
            )
        )
    for kind, setting, what, check_id in (
        (C2B_CONFIRMATION, "MPESA_C2B_TOKEN", "paybill (C2B) confirmations", "payments.W006"),
        (B2C_RESULT, "MPESA_B2C_TOKEN", "payout (B2C) results", "payments.W007"),
    ):
        if not provider.callback_secret(kind):
            warnings.append(
                DeployWarning(
                    check_id,
                    f"{setting} is empty: {what} cannot be authenticated and are only held for review.",
                    f"Set {setting} to a long random secret (it is part of the callback URLs).",
                )
            )
    if not (provider.stk.callback_url_override or site_url).startswith("https://"):
        warnings.append(
            DeployWarning(
                "payments.W005",
                "M-Pesa callbacks would go to a non-HTTPS URL; Daraja requires public HTTPS callback URLs.",
                "Set SITE_URL (or MPESA_CALLBACK_URL) to the public https:// address.",
            )
        )
    return warnings
