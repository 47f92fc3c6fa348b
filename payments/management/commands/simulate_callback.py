"""`manage.py simulate_callback`: replay or forge an AzamPay callback for a payment, over real HTTP.

The mobile-money `stripe trigger`: send the site the callback a provider would send (or a forged, tampered
or duplicated one) and see exactly what the site answers.
"""

import json
import secrets
import threading
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.db.models import Q

from payments.sandbox.azampay import (
    CALLBACK_MESSAGE,
    DEFAULT_CALLBACK_PASSWORD,
    HOSTED_OPERATOR,
    build_callback,
    default_callback_url,
)
from payments.sandbox.outcomes import Result

REQUEST_TIMEOUT_SECONDS = 10.0
MAX_DUPLICATES = 50
BURST_RELEASE_TIMEOUT_SECONDS = 5.0
MNO_OPERATORS = {
    "mpesa": "Mpesa",
    "airtel": "Airtel",
    "tigo": "Tigo",
    "halopesa": "Halopesa",
    "azampesa": "Azampesa",
    "card": HOSTED_OPERATOR,
}


class PaymentLike(Protocol):
    reference: str
    provider: str
    provider_reference: str | None
    amount: Decimal
    msisdn: str
    channel: str


@dataclass
class SendResult:
    attempt: int
    status: int | None = None
    body: str = ""
    error: str = ""


def find_payment(reference: str) -> PaymentLike:
    """The payment with this reference, or the latest payment of the donation with this reference."""
    from payments.models import Payment  # the ORM only when a real payment is looked up

    try:
        payment = (
            Payment.objects.filter(Q(reference=reference) | Q(donation__reference=reference))
            .order_by("-created_at", "-id")
            .first()
        )
    except DatabaseError as exc:
        raise CommandError(f"Could not read payments from the database ({exc}). Did you run migrate?") from exc
    if payment is None:
        raise CommandError(f"No payment or donation has the reference {reference!r}.")
    return payment


def whole_amount(amount: Decimal) -> str:
    """The amount as the site sent it to AzamPay: whole shillings, no decimals."""
    return str(int(amount)) if amount == amount.to_integral_value() else format(amount, "f")


def callback_for_payment(
    payment: PaymentLike,
    *,
    success: bool,
    message: str = "",
    amount: str = "",
    password: str | None = None,
) -> dict[str, Any]:
    operator = MNO_OPERATORS.get((payment.channel or "").strip().lower(), payment.channel or "Mpesa")
    return build_callback(
        # A hosted-page payment has no AzamPay id until the callback: invent one, as AzamPay would.
        transaction_id=payment.provider_reference or uuid.uuid4().hex,
        external_id=payment.reference,
        amount=amount or whole_amount(payment.amount),
        msisdn=payment.msisdn or "",
        operator=operator,
        mnoreference=str(uuid.uuid4()),
        success=success,
        message=message or CALLBACK_MESSAGE[Result.SUCCESS if success else Result.FAILED],
        password=password,
    )


def send_callback(
    url: str, body: bytes, *, copies: int = 1, timeout: float = REQUEST_TIMEOUT_SECONDS
) -> list[SendResult]:
    """POST `body` `copies` times, all released together so duplicates race like a provider's retries."""
    results = [SendResult(attempt=i + 1) for i in range(copies)]
    barrier = threading.Barrier(copies)

    def one(result: SendResult) -> None:
        try:
            barrier.wait(timeout=BURST_RELEASE_TIMEOUT_SECONDS)
        except threading.BrokenBarrierError:
            pass
        try:
            response = requests.post(
                url,
                data=body,
                timeout=timeout,
                allow_redirects=False,
                headers={"Content-Type": "application/json", "User-Agent": "simulate_callback/1.0"},
            )
            result.status, result.body = response.status_code, response.text
        except requests.RequestException as exc:
            result.error = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=one, args=(r,), daemon=True) for r in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + BURST_RELEASE_TIMEOUT_SECONDS + 1)
    return results


class Command(BaseCommand):
    help = (
        "Send an AzamPay callback for a payment to the site over HTTP: a faithful replay, or a forged, "
        "tampered or duplicated one. Prints every answer."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reference", required=True, help="Payment reference or donation reference.")
        parser.add_argument("--status", choices=("success", "failure"), default="success")
        parser.add_argument(
            "--message", default="", help='The callback "message" (default "success" / "Transaction failed").'
        )
        parser.add_argument(
            "--duplicates", type=int, default=1, help="Send N identical callbacks concurrently (default 1)."
        )
        password = parser.add_mutually_exclusive_group()
        password.add_argument("--forge", action="store_true", help="Send a wrong callback password.")
        password.add_argument("--no-password", action="store_true", help="Leave the password field out.")
        parser.add_argument("--amount", default="", help="Claim this amount instead of the payment's (tampering).")
        parser.add_argument(
            "--url",
            default="",
            help="Callback URL (default {SITE_URL}" + "/api/v1.0/donors/payment/azampay/callback/).",
        )
        parser.add_argument("--timeout", type=float, default=REQUEST_TIMEOUT_SECONDS, help="Seconds per request.")

    def handle(self, *args: Any, **options: Any) -> None:
        copies = options["duplicates"]
        if not 1 <= copies <= MAX_DUPLICATES:
            raise CommandError(f"--duplicates must be between 1 and {MAX_DUPLICATES}.")
        payment = find_payment(options["reference"])
        if payment.provider != "azampay":
            raise CommandError(
                f"simulate_callback speaks AzamPay only; {payment.reference} is a {payment.provider} payment."
            )
        if not payment.provider_reference:
            self.stderr.write("The payment has no AzamPay transaction id yet; the callback carries a fresh one.")

        if options["forge"]:
            password: str | None = "forged-" + secrets.token_hex(8)
        elif options["no_password"]:
            password = None
        else:
            # With nothing configured here, the demo site (make run) expects the sandbox's built-in password.
            configured = settings.PAYMENT_PROVIDERS.get("azampay", {}).get("callback_password", "")
            password = configured or DEFAULT_CALLBACK_PASSWORD
            if not configured:
                self.stderr.write("AZAMPAY_CALLBACK_PASSWORD is not set here: sending the sandbox's built-in one.")
        body = callback_for_payment(
            payment,
            success=options["status"] == "success",
            message=options["message"],
            amount=options["amount"],
            password=password,
        )
        url = options["url"] or default_callback_url()
        shown = {**body, "password": "***"} if "password" in body else body  # never print the real secret
        self.stdout.write(f"POST {url} ×{copies}\n{json.dumps(shown, indent=2)}")

        results = send_callback(url, json.dumps(body).encode(), copies=copies, timeout=options["timeout"])
        for result in results:
            if result.error:
                self.stdout.write(self.style.ERROR(f"#{result.attempt}: {result.error}"))
            else:
                style = self.style.SUCCESS if result.status and result.status < 300 else self.style.WARNING
                self.stdout.write(style(f"#{result.attempt}: HTTP {result.status} {result.body}"))
        if all(r.error for r in results):
            raise CommandError(f"Could not reach the site at {url}: {results[0].error}. Is it running?")
