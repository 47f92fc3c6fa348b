"""`manage.py check --deploy` for azampay: the weak production settings of this rail, one warning each.

Kept out of provider.py (which translates and talks HTTP) because the list grows with every setting an
operator can get wrong; `AzamPayProvider.deploy_warnings` delegates here.
"""

from typing import TYPE_CHECKING

from payments.providers.base import DeployWarning

if TYPE_CHECKING:
    from payments.providers.azampay.provider import AzamPayProvider


def deploy_warnings(provider: "AzamPayProvider", *, site_url: str) -> list[DeployWarning]:
    if provider.callback_auth.password:
        return []
    return [
        DeployWarning(
            "payments.W002",
            "AZAMPAY_CALLBACK_PASSWORD is empty: every AzamPay callback must be confirmed by a status query, "
            "and a payment whose AzamPay id we never learnt (card, or a lost checkout answer) is held for "
            "review instead of credited.",
            "Ask AzamPay support for the dashboard callback password and set it.",
        )
    ]
