"""The callback a provider would send about one of our payments, and its sending over real HTTP.

What `manage.py simulate_callback` is made of, kept out of the command so the command only reads options:
each body is built by that provider's bodies module (payments/sandbox/<provider>/bodies.py), from the payment's
values, exactly as the simulators build theirs. No ORM here: a payment is anything with the fields of
PaymentLike.
"""

import secrets
import threading
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import requests

from payments.providers.airtel.client import airtel_id
from payments.sandbox.airtel import bodies as airtel
from payments.sandbox.azampay import bodies as azampay
from payments.sandbox.azampay.checks import HOSTED_OPERATOR
from payments.sandbox.daraja import bodies as daraja
from payments.sandbox.mtn import bodies as mtn
from payments.sandbox.outcomes import Result

REQUEST_TIMEOUT_SECONDS = 10.0
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
    # Read for M-Pesa, MTN and Airtel payments only.
    currency: str
    external_id: str


@dataclass
class SendResult:
    attempt: int
    status: int | None = None
    body: str = ""
    error: str = ""


def whole_amount(amount: Decimal) -> str:
    """The amount as the site sent it to AzamPay: whole shillings, no decimals."""
    return str(int(amount)) if amount == amount.to_integral_value() else format(amount, "f")


def callback_for_payment(
    payment: PaymentLike, *, success: bool, message: str = "", amount: str = "", password: str | None = None
) -> dict[str, Any]:
    """AzamPay's callback; `password` None leaves the field out."""
    operator = MNO_OPERATORS.get((payment.channel or "").strip().lower(), payment.channel or "Mpesa")
    return azampay.build_callback(
        # A hosted-page payment has no AzamPay id until the callback: invent one, as AzamPay would.
        transaction_id=payment.provider_reference or uuid.uuid4().hex,
        external_id=payment.reference,
        amount=amount or whole_amount(payment.amount),
        msisdn=payment.msisdn or "",
        operator=operator,
        mnoreference=str(uuid.uuid4()),
        success=success,
        message=message or azampay.CALLBACK_MESSAGE[Result.SUCCESS if success else Result.FAILED],
        password=password,
    )


def stk_callback_for_payment(
    payment: PaymentLike, *, success: bool, message: str = "", amount: Decimal | None = None
) -> dict[str, Any]:
    """Daraja's STK callback: `Body.stkCallback`, metadata on success only."""
    code, desc, _ = daraja.RESULT_CODES[Result.SUCCESS if success else Result.FAILED]
    claimed = payment.amount if amount is None else amount
    return daraja.build_stk_callback(
        merchant_request_id=daraja.new_conversation_id(),
        # Without Daraja's id the site cannot find the payment at the base path (a fresh one: it answers 404).
        checkout_request_id=payment.provider_reference or daraja.new_checkout_request_id(),
        result_code=code,
        result_desc=message or desc,
        amount=float(claimed),  # a tampered amount may have decimals
        receipt=daraja.new_receipt(),
        phone=payment.msisdn if (payment.msisdn or "").isdigit() else "0",
        transaction_date=daraja.timestamp(),
    )


def mtn_callback_for_payment(payment: PaymentLike, *, success: bool, amount: Decimal | None = None) -> dict[str, Any]:
    """MTN's status object as its callback: no `referenceId` (v1 callbacks carry none), our reference as
    `externalId`."""
    return mtn.status_object(
        external_id=payment.reference,
        amount=whole_amount(payment.amount if amount is None else amount),
        currency=payment.currency,
        msisdn=payment.msisdn or "",
        status="SUCCESSFUL" if success else "FAILED",
        payer_message=f"Donation {payment.reference}"[:60],
        payee_note=f"Donation {payment.reference}",
    )


def airtel_callback_for_payment(
    payment: PaymentLike, *, success: bool, message: str = "", hash_key: str | None = None, forge: bool = False
) -> dict[str, Any]:
    """Airtel's collection callback `{"transaction": {...}}` with our id, and the top-level `hash` keyed with
    `hash_key` (none when None; a wrong one with `forge`)."""
    return airtel.collection_callback(
        transaction_id=payment.external_id or airtel_id(payment.reference),
        money_id=payment.provider_reference or airtel.new_money_id(),
        result=Result.SUCCESS if success else Result.FAILED,
        message=message,
        currency=payment.currency,
        amount=int(payment.amount),
        secret=("forged-" + secrets.token_hex(8)) if forge else hash_key,
    )


def never_issued_token() -> str:
    """A secret URL segment nobody was ever given (the site's tokens are 32 URL-safe characters too)."""
    return secrets.token_urlsafe(24)


def send_callback(
    url: str, body: bytes, *, copies: int = 1, timeout: float = REQUEST_TIMEOUT_SECONDS, method: str = "POST"
) -> list[SendResult]:
    """Send `body` `copies` times, all released together so duplicates race like a provider's retries."""
    results = [SendResult(attempt=i + 1) for i in range(copies)]
    barrier = threading.Barrier(copies)

    def one(result: SendResult) -> None:
        try:
            barrier.wait(timeout=BURST_RELEASE_TIMEOUT_SECONDS)
        except threading.BrokenBarrierError:
            pass
        try:
            response = requests.request(
                method,
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
