"""`manage.py sandbox`: run the provider simulators (AzamPay, Telegram, …) on one port, in the foreground."""

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
        "Run the local payment provider simulators (AzamPay under /azampay and /azampay-auth, Telegram under "
        "/telegram) with scripted outcomes by phone number. Inspect them at /_sandbox/transactions."
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
            help="Where AzamPay callbacks are delivered "
            "(default {SITE_URL}/api/v1.0/donors/payment/azampay/callback/).",
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
            help="Seconds an issued AzamPay token stays valid (default 3600); shorten it to exercise refresh.",
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
        self.stdout.write(f"  Telegram       {base}/telegram       (TELEGRAM_API_URL)")
        self.stdout.write(f"  Callbacks to   {callback_url}")
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
