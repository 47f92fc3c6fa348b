"""System checks: warn when production runs with a weak setting. Each provider reports its own
(`PaymentProvider.deploy_warnings`); this loops over the configured ones."""

from django.conf import settings
from django.core import checks

from payments.providers.registry import get_provider, provider_codes


@checks.register(checks.Tags.security, deploy=True)
def callback_trust_policy(app_configs, **kwargs) -> list[checks.CheckMessage]:
    problems: list[checks.CheckMessage] = []
    if settings.PAYMENTS_SANDBOX_URL:
        problems.append(
            checks.Warning(
                "PAYMENTS_SANDBOX_URL is set: providers point at the local simulator.",
                hint="Unset PAYMENTS_SANDBOX_URL in production.",
                id="payments.W001",
            )
        )
    for code in provider_codes():
        for warning in get_provider(code).deploy_warnings(site_url=settings.SITE_URL):
            problems.append(checks.Warning(warning.message, hint=warning.hint, id=warning.id))
    return problems
