"""Alert operators (Telegram ADMIN_CHAT_ID) about stuck payments, silent providers and callback errors."""

from django.conf import settings
from django.core.management.base import BaseCommand

from integrations.telegram import telegram_send
from payments.services.watchdog import watchdog_alerts


class Command(BaseCommand):
    help = "Check for stuck payments, callback silence and error rates; send alerts to ADMIN_CHAT_ID."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Print the alerts, send nothing")

    def handle(self, *args, dry_run: bool = False, **options) -> None:
        alerts = watchdog_alerts()
        if not alerts:
            self.stdout.write(self.style.SUCCESS("All clear: nothing stuck, callbacks arriving, error rate normal."))
            return
        for line in alerts:
            self.stdout.write(f"ALERT {line}")
        if dry_run:
            return
        if not settings.ADMIN_CHAT_ID:
            self.stderr.write("ADMIN_CHAT_ID is not set: alerts printed only.")
            return
        sent = telegram_send(settings.ADMIN_CHAT_ID, "Payments watchdog\n" + "\n".join(f"• {a}" for a in alerts))
        self.stdout.write("Sent to Telegram." if sent else "Telegram send failed (see logs/payments.log).")
