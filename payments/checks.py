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
    return problems
