"""`manage.py mpesa_register_c2b`: register the C2B validation/confirmation URLs (with their secret token)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from payments.callback_urls import callback_url
from payments.providers.base import CallbackRole, Paybill, ProviderError
from payments.providers.mpesa.codes import C2B_CONFIRMATION, C2B_RESPONSE_TYPES
from payments.providers.mpesa.paybill import url_problems
from payments.providers.registry import UnknownProvider, get_capable


class Command(BaseCommand):
    help = (
        "Register the M-Pesa C2B (paybill) validation and confirmation URLs with Daraja. The URLs carry "
        "MPESA_C2B_TOKEN; in production registration is one-time (delete the old URLs on the portal first)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--confirmation-url", default="", help="Default: {SITE_URL}/webhooks/paybill/confirmation/{token}/"
        )
        parser.add_argument(
            "--validation-url", default="", help="Default: {SITE_URL}/webhooks/paybill/validation/{token}/"
        )
        parser.add_argument(
            "--response-type",
            default=settings.MPESA_C2B_RESPONSE_TYPE,
            choices=C2B_RESPONSE_TYPES,
            help="What Safaricom does when the validation URL does not answer (default MPESA_C2B_RESPONSE_TYPE).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Print what would be registered; send nothing.")

    def handle(self, *args, **options) -> None:
        try:
            provider = get_capable("mpesa", Paybill)
        except UnknownProvider as exc:
            raise CommandError("M-Pesa is not configured (MPESA_CONSUMER_KEY or PAYMENTS_SANDBOX_URL).") from exc
        token = provider.callback_secret(C2B_CONFIRMATION)  # type: ignore[attr-defined]
        if not token:
            raise CommandError("Set MPESA_C2B_TOKEN (a long random secret) first: the URLs must carry it.")
        confirmation = options["confirmation_url"] or callback_url(provider, CallbackRole.PAYBILL_CONFIRMATION, token)
        validation = options["validation_url"] or callback_url(provider, CallbackRole.PAYBILL_VALIDATION, token)
        for url in (confirmation, validation):
            words = url_problems(url)
            if words:
                shown = url.replace(token, "<token>")
                raise CommandError(f"Daraja refuses C2B URLs containing {', '.join(words)}: {shown}")
            if not url.startswith("https://") and not settings.PAYMENTS_SANDBOX_URL:
                self.stderr.write(self.style.WARNING(f"Production Daraja needs HTTPS: {url}"))
        self.stdout.write(f"Shortcode {provider.paybill_shortcode}, ResponseType {options['response_type']}")
        self.stdout.write(f"  confirmation: {confirmation.replace(token, '<token>')}")
        self.stdout.write(f"  validation:   {validation.replace(token, '<token>')}")
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing sent.")
            return
        try:
            answer = provider.register_paybill_urls(
                confirmation_url=confirmation, validation_url=validation, response_type=options["response_type"]
            )
        except ProviderError as exc:
            raise CommandError(f"Daraja refused: {exc.message}") from exc
        self.stdout.write(self.style.SUCCESS(f"Registered: {answer.get('ResponseDescription', 'Success')}"))
