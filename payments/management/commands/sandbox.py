"""`manage.py sandbox`: run the four provider simulators (AzamPay, M-Pesa Daraja, MTN MoMo, Airtel Money) and
Telegram's on one port, in the foreground."""

import signal
import threading
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from payments.sandbox import build_sandbox
from payments.sandbox.azampay import default_callback_url
from payments.sandbox.base import DEFAULT_TOKEN_LIFETIME_SECONDS


def default_time_scale() -> float:
    """SANDBOX_TIME_SCALE from settings: 0.1 makes every scripted delay ten times shorter."""
    return settings.SANDBOX_TIME_SCALE


class Command(BaseCommand):
    help = (
        "Run the local simulators of the four payment rails and Telegram on one port, no database: AzamPay "
        "(/azampay-auth, /azampay: MNO, bank and hosted card checkouts, status, signed callbacks), M-Pesa Daraja "
        "(/daraja: STK push and query, C2B paybill, B2C payouts, reversals), MTN MoMo (/mtn: request to pay, "
        "transfers, refunds, MTN's own test numbers), Airtel Money (/airtel: USSD push, enquiry, refunds, "
        "disbursements with an encrypted PIN) and the Telegram Bot API (/telegram). A payer number's last two "
        "digits script the outcome (01 insufficient funds … 07 out of order; docs/api.md). Inspect every charge "
        "and callback at /_sandbox/transactions; point the site at it with PAYMENTS_SANDBOX_URL."
    )
    # The sandbox plays other companies' servers: it needs no database, so no checks that might touch one.
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Interface to listen on (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8001, help="Port to listen on (default 8001).")
        parser.add_argument(
            "--callback-url",
            default="",
            help="Where AzamPay callbacks are delivered (default {SITE_URL}/api/v1.0/donors/payment/azampay/"
            "callback/); Airtel's go to this URL's host at /webhooks/airtel/payment/. Daraja and MTN call back the "
            "URL each request names (CallBackURL, X-Callback-Url).",
        )
        parser.add_argument(
            "--time-scale",
            "--speed",
            dest="time_scale",
            type=float,
            default=None,
            help="Multiply every scripted delay (0.1 turns 1 s into 0.1 s and 30 s into 3 s). "
            "Default: the SANDBOX_TIME_SCALE setting (1.0).",
        )
        parser.add_argument(
            "--token-lifetime",
            type=int,
            default=DEFAULT_TOKEN_LIFETIME_SECONDS,
            help="Seconds an issued access token stays valid, on every simulator (AzamPay, Daraja, MTN; Airtel's "
            "at most 180, as Airtel's own); default 3600. Shorten it to exercise token refresh.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        time_scale = options["time_scale"] if options["time_scale"] is not None else default_time_scale()
        if time_scale < 0:
            raise CommandError("--time-scale must not be negative.")
        if options["token_lifetime"] <= 0:
            raise CommandError("--token-lifetime must be positive.")
        callback_url = options["callback_url"] or default_callback_url()
        try:
            server = build_sandbox(
                options["host"], options["port"], callback_url, time_scale, token_lifetime=options["token_lifetime"]
            )
        except OSError as exc:
            raise CommandError(f"Cannot listen on {options['host']}:{options['port']}: {exc}") from exc

        base = server.base_url
        self.stdout.write(self.style.SUCCESS(f"Payment sandbox listening on {base}"))
        self.stdout.write(f"  AzamPay auth   {base}/azampay-auth   (AZAMPAY_AUTH_URL)")
        self.stdout.write(f"  AzamPay API    {base}/azampay        (AZAMPAY_API_URL)")
        self.stdout.write(f"  M-Pesa Daraja  {base}/daraja         (MPESA_API_URL)")
        self.stdout.write(f"  MTN MoMo       {base}/mtn            (MTN_API_URL)")
        self.stdout.write(f"  Airtel Money   {base}/airtel         (AIRTEL_API_URL)")
        self.stdout.write(f"  Telegram       {base}/telegram       (TELEGRAM_API_URL)")
        self.stdout.write(f"  Callbacks to   {callback_url}   (AzamPay; Airtel to its host; Daraja, MTN as asked)")
        self.stdout.write(f"  Inspect        {base}/_sandbox/transactions  {base}/_sandbox/telegram/messages")
        self.stdout.write(f"  Time scale     {time_scale:g}   (point the site at it with PAYMENTS_SANDBOX_URL={base})")
        self.stdout.write("Phone numbers ending 01..07 script failures, timeouts and odd callbacks (see docs/api.md).")
        if threading.current_thread() is threading.main_thread():
            # `make run` and process managers stop us with SIGTERM: shut down as cleanly as on Ctrl-C.
            signal.signal(signal.SIGTERM, _interrupt)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            self.stdout.write("Stopping the sandbox.")
        finally:
            server.close()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
