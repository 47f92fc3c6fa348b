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


# Backends that keep a message on this machine: a donor never receives it.
UNSENT_BACKENDS = {
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.locmem.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
}


@checks.register(checks.Tags.security, deploy=True)
def email_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    if settings.EMAIL_BACKEND in UNSENT_BACKENDS:
        return [
            checks.Warning(
                f"Receipts are not emailed: EMAIL_BACKEND is {settings.EMAIL_BACKEND.rsplit('.', 2)[-2]}.",
                hint="Set EMAIL_URL to the mail server, e.g. smtp+tls://user:password@smtp.example.org:587.",
                id="receipts.W002",
            )
        ]
    return []
