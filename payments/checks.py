"""System checks: warn when production runs with a weak callback trust policy."""

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security, deploy=True)
def callback_trust_policy(app_configs, **kwargs):
    problems = []
    if settings.PAYMENTS_SANDBOX_URL:
        problems.append(
            checks.Warning(
                "PAYMENTS_SANDBOX_URL is set: providers point at the local simulator.",
                hint="Unset PAYMENTS_SANDBOX_URL in production.",
                id="payments.W001",
            )
        )
    if not settings.AZAMPAY_CALLBACK_PASSWORD:
        problems.append(
            checks.Warning(
                "AZAMPAY_CALLBACK_PASSWORD is empty: every AzamPay callback must be confirmed by a status query.",
                hint="Ask AzamPay support for the dashboard callback password and set it.",
                id="payments.W002",
            )
        )
    problems.extend(_mpesa_policy())
    return problems


def _mpesa_policy() -> list[checks.CheckMessage]:
    """Daraja signs nothing: crediting on a callback's word, or a callback URL Daraja refuses, is weak."""
    config = settings.PAYMENT_PROVIDERS.get("mpesa")
    if not config:
        return []
    problems = []
    if config.get("trust_callbacks"):
        problems.append(
            checks.Warning(
                "MPESA_TRUST_CALLBACKS is on: an unsigned M-Pesa callback on its token URL credits a donation "
                "without the STK Push Query confirming it.",
                hint="Leave MPESA_TRUST_CALLBACKS off; the query costs one request per payment.",
                id="payments.W003",
            )
        )
    if not config.get("allowed_ips"):
        problems.append(
            checks.Warning(
                "MPESA_ALLOWED_IPS is empty: M-Pesa callbacks from unexpected addresses are not even logged.",
                hint="Set MPESA_ALLOWED_IPS to Safaricom's callback addresses (see .env.production.example).",
                id="payments.W004",
            )
        )
    for key, setting, what in (
        ("c2b_token", "MPESA_C2B_TOKEN", "paybill (C2B) confirmations"),
        ("b2c_token", "MPESA_B2C_TOKEN", "payout (B2C) results"),
    ):
        if not config.get(key):
            problems.append(
                checks.Warning(
                    f"{setting} is empty: {what} cannot be authenticated and are only held for review.",
                    hint=f"Set {setting} to a long random secret (it is part of the callback URLs).",
                    id="payments.W006" if key == "c2b_token" else "payments.W007",
                )
            )
    callback_base = config.get("callback_url") or settings.SITE_URL
    if not str(callback_base).startswith("https://"):
        problems.append(
            checks.Warning(
                "M-Pesa callbacks would go to a non-HTTPS URL; Daraja requires public HTTPS callback URLs.",
                hint="Set SITE_URL (or MPESA_CALLBACK_URL) to the public https:// address.",
                id="payments.W005",
            )
        )
    return problems
