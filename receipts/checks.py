"""`check --deploy`: receipts must not go out with the demo organisation's name or registration number."""

from django.conf import settings
from django.core import checks

DEMO_NAME = "Patient Donations (demo)"
DEMO_REGISTRATION = "NGO/00000/DEMO"


@checks.register(checks.Tags.security, deploy=True)
def organisation_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    if settings.ORGANISATION_NAME in ("", DEMO_NAME) or settings.ORGANISATION_REGISTRATION_NUMBER in (
        "",
        DEMO_REGISTRATION,
    ):
        return [
            checks.Warning(
                "Receipts would carry the demo organisation: set ORGANISATION_NAME and "
                "ORGANISATION_REGISTRATION_NUMBER.",
                id="receipts.W001",
            )
        ]
    return []
