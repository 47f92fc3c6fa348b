"""`manage.py simulate_callback`: replay or forge a provider's payment callback for a payment, over real HTTP.

The mobile-money `stripe trigger`: send the site the callback a provider would send (or a forged, tampered
or duplicated one) and see exactly what the site answers. It speaks the four rails: AzamPay, M-Pesa (STK),
MTN MoMo and Airtel Money, each in its provider's shape, built by the providers' bodies modules that the
simulators use too (payments/sandbox/<provider>/bodies.py, through payments/sandbox/replay.py): this command only
reads options, picks the target URL and prints what it sent and what came back.

M-Pesa and MTN are given a secret callback URL per payment, and the site keeps only a keyed digest of it:
that URL cannot be rebuilt here. Their callbacks go to the base paths instead (/webhooks/mpesa/stkpush/,
/webhooks/mtn/collection/), which the site accepts and confirms with the provider's status query before
anything is credited. A forged one goes to a secret URL that was never handed out (the site answers 401).
"""

import json
import secrets
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.db.models import Q
from django.urls import reverse

from payments.providers.airtel.config import CONFIG as AIRTEL_CONFIG
from payments.providers.base import CallbackRole
from payments.providers.registry import PROVIDER_CLASSES
from payments.sandbox.azampay import DEFAULT_CALLBACK_PASSWORD, default_callback_url
from payments.sandbox.replay import (  # noqa: F401 (re-exported: the command's tests and scripts use these names)
    REQUEST_TIMEOUT_SECONDS,
    PaymentLike,
    SendResult,
    airtel_callback_for_payment,
    callback_for_payment,
    mtn_callback_for_payment,
    never_issued_token,
    send_callback,
    stk_callback_for_payment,
    whole_amount,
)

MAX_DUPLICATES = 50
METHODS = ("POST", "PUT")
MASK = "***"  # what is printed in place of a secret (AzamPay's password, Airtel's keyed hash)
# The environment variable of the key of Airtel's callback `hash`; its settings key is whatever the adapter's
# config declares for it.
AIRTEL_SECRET_VAR = "AIRTEL_CALLBACK_SECRET"  # noqa: S105 (the name of a variable, not a secret)


@dataclass(frozen=True)
class Rail:
    """What this command knows of one provider's payment callback."""

    code: str
    name: str
    confirmation: str  # how the site confirms an unauthenticated callback ("" = it authenticates AzamPay's)
    method: str = "POST"  # how the provider delivers it
    secret_url: bool = False  # the provider is given a secret URL per payment (which cannot be rebuilt here)


RAILS = {
    rail.code: rail
    for rail in (
        Rail("azampay", "AzamPay", ""),
        Rail("mpesa", "M-Pesa", "STK Push Query", secret_url=True),
        Rail("mtn", "MTN MoMo", "status query (GET requesttopay)", method="PUT", secret_url=True),
        Rail("airtel", "Airtel Money", "transaction enquiry"),
    )
}
# Options that mean something on some rails only: option → (the rails it is for, what to say elsewhere).
RAIL_OPTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "no_password": (("azampay",), "--no-password is for AzamPay's callback password (Airtel Money: --unsigned)"),
    "unsigned": (("airtel",), "--unsigned is for Airtel Money's callback hash (AzamPay: --no-password)"),
}


@dataclass(frozen=True)
class Callback:
    body: dict[str, Any]
    shown: dict[str, Any]  # the body as printed: secrets masked
    url: str
    notes: tuple[str, ...] = ()


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


def claimed_amount(text: str) -> Decimal:
    """`--amount` as a number (any finite one: tampering may claim 0 or less), else CommandError."""
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite():
        raise CommandError(f"--amount must be a number such as 2500 or 2500.50, not {text!r}.")
    return amount


def airtel_hash_key() -> str:
    """AIRTEL_CALLBACK_SECRET as configured here ("" when unset), under the key the adapter's config declares."""
    key = next((s.key for s in AIRTEL_CONFIG.settings if s.var == AIRTEL_SECRET_VAR), "callback_secret")
    return str(settings.PAYMENT_PROVIDERS.get("airtel", {}).get(key) or "")


def payment_url(rail: Rail, token: str = "") -> str:
    """{SITE_URL} + the path the provider's payment callback route declares (with `token` as its secret)."""
    route = PROVIDER_CLASSES[rail.code].route_for(CallbackRole.PAYMENT)
    if route is None:  # every rail here declares one; a provider that drops it must not be posted to blindly
        raise CommandError(f"{rail.name} declares no payment callback route.")
    path = reverse(f"{route.name}-token", kwargs={"token": token}) if token else reverse(route.name)
    return settings.SITE_URL.rstrip("/") + path.rstrip("/") + "/"


def route_methods(rail: Rail) -> tuple[str, ...]:
    route = PROVIDER_CLASSES[rail.code].route_for(CallbackRole.PAYMENT)
    return tuple(m.upper() for m in route.methods) if route else ("POST",)


class Command(BaseCommand):
    help = (
        "Send a provider's payment callback for a payment to the site over HTTP: a faithful replay, or a forged, "
        "tampered or duplicated one. Prints every answer. Speaks AzamPay, M-Pesa (STK), MTN MoMo and Airtel "
        "Money; the payment's provider picks the shape. M-Pesa and MTN callbacks go to the base paths "
        "(/webhooks/mpesa/stkpush/, /webhooks/mtn/collection/): the site keeps only keyed digests of each "
        "payment's secret callback URL, so that URL cannot be rebuilt here; the site accepts callbacks at the "
        "base path and confirms them with the provider's status query before crediting."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reference", required=True, help="Payment reference or donation reference (picks the provider)."
        )
        parser.add_argument("--status", choices=("success", "failure"), default="success")
        parser.add_argument(
            "--message",
            default="",
            help='The callback\'s text: AzamPay "message" (default "success" / "Transaction failed"), M-Pesa '
            '"ResultDesc", Airtel "transaction.message". MTN\'s status object has none.',
        )
        parser.add_argument(
            "--duplicates", type=int, default=1, help="Send N identical callbacks concurrently (default 1)."
        )
        forgery = parser.add_mutually_exclusive_group()
        forgery.add_argument(
            "--forge",
            action="store_true",
            help="A forged callback: AzamPay a wrong password, Airtel a wrong hash, M-Pesa and MTN to a secret "
            "URL that was never handed out (e.g. /webhooks/mpesa/stkpush/<random>/; with --url: <url>/<random>/).",
        )
        forgery.add_argument("--no-password", action="store_true", help="AzamPay: leave the password field out.")
        forgery.add_argument("--unsigned", action="store_true", help="Airtel Money: leave the hash out.")
        parser.add_argument(
            "--amount",
            default="",
            help="Claim this amount instead of the payment's (tampering). Airtel's callback carries no amount.",
        )
        parser.add_argument(
            "--url",
            default="",
            help="Callback URL (default {SITE_URL} + the provider's path: "
            "/api/v1.0/donors/payment/azampay/callback/, /webhooks/mpesa/stkpush/, /webhooks/mtn/collection/, "
            "/webhooks/airtel/payment/).",
        )
        parser.add_argument(
            "--method",
            choices=METHODS,
            type=str.upper,
            default=None,
            help="HTTP method (default: PUT for MTN MoMo, as MTN delivers; POST for the others).",
        )
        parser.add_argument("--timeout", type=float, default=REQUEST_TIMEOUT_SECONDS, help="Seconds per request.")

    def handle(self, *args: Any, **options: Any) -> None:
        copies = options["duplicates"]
        if not 1 <= copies <= MAX_DUPLICATES:
            raise CommandError(f"--duplicates must be between 1 and {MAX_DUPLICATES}.")
        if not options["timeout"] > 0:
            raise CommandError("--timeout must be a positive number of seconds.")
        payment = find_payment(options["reference"])
        rail = RAILS.get(payment.provider)
        if rail is None:
            spoken = ", ".join(r.name for r in RAILS.values())
            raise CommandError(
                f"simulate_callback speaks {spoken}; {payment.reference} is a {payment.provider!r} payment."
            )
        self.check_options(rail, options)
        method = options["method"] or rail.method

        builders = {
            "azampay": self.build_azampay,
            "mpesa": self.build_mpesa,
            "mtn": self.build_mtn,
            "airtel": self.build_airtel,
        }
        callback = builders[rail.code](payment, options)
        self.stdout.write(f"{method} {callback.url} ×{copies}\n{json.dumps(callback.shown, indent=2)}")
        for note in callback.notes:
            self.stdout.write(f"Note: {note}")

        results = send_callback(
            callback.url, json.dumps(callback.body).encode(), copies=copies, timeout=options["timeout"], method=method
        )
        for result in results:
            if result.error:
                self.stdout.write(self.style.ERROR(f"#{result.attempt}: {result.error}"))
            else:
                style = self.style.SUCCESS if result.status and result.status < 300 else self.style.WARNING
                self.stdout.write(style(f"#{result.attempt}: HTTP {result.status} {result.body}"))
        if all(r.error for r in results):
            raise CommandError(f"Could not reach the site at {callback.url}: {results[0].error}. Is it running?")

    def check_options(self, rail: Rail, options: dict[str, Any]) -> None:
        """Options that make no sense for this payment's rail: a clear error, never a silent no-op."""
        for option, (rails, meaning) in RAIL_OPTIONS.items():
            if options[option] and rail.code not in rails:
                raise CommandError(f"{meaning}; {options['reference']} is a {rail.name} payment.")
        if options["amount"]:
            if rail.code == "airtel":
                raise CommandError(
                    "Airtel Money's callback carries no amount (the transaction enquiry decides): --amount does "
                    "not apply."
                )
            claimed_amount(options["amount"])
            if rail.code == "mpesa" and options["status"] == "failure":
                raise CommandError("An M-Pesa failure callback carries no amount: --amount needs --status success.")
        if options["message"] and rail.code == "mtn":
            raise CommandError("MTN MoMo's callback (its status object) has no message: --message does not apply.")
        method = options["method"]
        if method and method not in route_methods(rail):
            allowed = " or ".join(route_methods(rail))
            raise CommandError(f"{rail.name} callbacks are sent by {allowed}; the site answers {method} with 405.")

    # --- one builder per rail: (body, what is printed, URL, notes) ---------------------------------------

    def build_azampay(self, payment: PaymentLike, options: dict[str, Any]) -> Callback:
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
        shown = {**body, "password": MASK} if "password" in body else body  # never print the real secret
        return Callback(body, shown, options["url"] or default_callback_url())

    def build_mpesa(self, payment: PaymentLike, options: dict[str, Any]) -> Callback:
        if not payment.provider_reference:
            self.stderr.write(
                "The payment has no M-Pesa CheckoutRequestID: the callback carries a made-up one, and at the base "
                "path the site finds an STK callback by that id alone (expect 404)."
            )
        body = stk_callback_for_payment(
            payment,
            success=options["status"] == "success",
            message=options["message"],
            amount=claimed_amount(options["amount"]) if options["amount"] else None,
        )
        url, notes = self.secret_url_rail_target(RAILS["mpesa"], options)
        return Callback(body, body, url, notes)

    def build_mtn(self, payment: PaymentLike, options: dict[str, Any]) -> Callback:
        if not payment.provider_reference:
            self.stderr.write(
                "The payment has no MTN X-Reference-Id: the site cannot ask MTN about it (the callback stays "
                "unconfirmed)."
            )
        body = mtn_callback_for_payment(
            payment,
            success=options["status"] == "success",
            amount=claimed_amount(options["amount"]) if options["amount"] else None,
        )
        url, notes = self.secret_url_rail_target(RAILS["mtn"], options)
        return Callback(body, body, url, notes)

    def build_airtel(self, payment: PaymentLike, options: dict[str, Any]) -> Callback:
        configured = airtel_hash_key()
        tampered = options["forge"] or options["unsigned"]
        if not configured and not tampered:
            self.stderr.write(f"{AIRTEL_SECRET_VAR} is not set here: sending the callback without a hash.")
        if not configured and tampered:
            self.stderr.write(
                f"{AIRTEL_SECRET_VAR} is not set here: a site configured like this checks no hash, so it will not "
                "refuse this callback (the transaction enquiry still decides)."
            )
        body = airtel_callback_for_payment(
            payment,
            success=options["status"] == "success",
            message=options["message"],
            hash_key=None if tampered else (configured or None),
            forge=options["forge"],
        )
        shown = {**body, "hash": MASK} if "hash" in body else body  # keyed with our secret: never printed
        rail = RAILS["airtel"]
        note = (
            f"{rail.name} calls one URL per app (no secret in it); the site credits nothing before the "
            f"{rail.confirmation} confirms the payment."
        )
        return Callback(body, shown, options["url"] or payment_url(rail), (note,))

    def secret_url_rail_target(self, rail: Rail, options: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
        """Where an M-Pesa or MTN callback goes: the base path, or (forged) a secret URL never handed out."""
        if options["forge"]:
            token = never_issued_token()
            url = f"{options['url'].rstrip('/')}/{token}/" if options["url"] else payment_url(rail, token)
            return url, (
                "Sent to a secret callback URL that was never handed out: the site should refuse it (401) and "
                "credit nothing.",
            )
        where = "to --url" if options["url"] else "to the base path instead, which the site accepts"
        return options["url"] or payment_url(rail), (
            f"{rail.name} callbacks normally go to the payment's own secret URL; the site keeps only a keyed "
            f"digest of it, so it cannot be rebuilt here. Sent {where}: the site finds the payment by the body "
            f"and credits nothing before the {rail.confirmation} confirms it.",
        )
