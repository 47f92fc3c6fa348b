"""The three ways AzamPay collects: a push to the payer's phone (MNO), a bank debit, a hosted card page.

Every request that moves money is sent once (`moves_money=True`: a timeout after sending is ambiguous).
Request and answer shapes: docs/providers/azampay.md.
"""

from decimal import Decimal
from urllib.parse import urlsplit

from payments.providers.azampay.client import AzamPayClient, refusal
from payments.providers.azampay.codes import BANK_CHANNELS, CARD_CHANNEL, HOSTED_EXTERNAL_ID_MAX
from payments.providers.base import ChargeRequest, PaymentStatus, ProviderError, ProviderResult
from payments.providers.http import response_object

MNO_CHECKOUT_PATH = "/azampay/mno/checkout"
BANK_CHECKOUT_PATH = "/azampay/bank/checkout"
HOSTED_CHECKOUT_PATH = "/api/v1/Partner/PostCheckout"


def mno_checkout(client: AzamPayClient, charge: ChargeRequest, channel: str) -> ProviderResult:
    body = {
        "accountNumber": charge.msisdn,
        "amount": whole(charge.amount),
        "currency": charge.currency,
        "externalId": charge.reference,
        "provider": channel,
        "additionalProperties": {"reference": charge.reference},
    }
    response = client.api.request("POST", MNO_CHECKOUT_PATH, json=body, headers=client.headers(), moves_money=True)
    client.forget_token_if_refused(response)
    payload = response_object(response)
    if response.status_code != 200 or payload.get("success") is not True or not payload.get("transactionId"):
        raise ProviderError(refusal(payload, "AzamPay did not start the payment."), status_code=response.status_code)
    return ProviderResult(
        status=PaymentStatus.PENDING,
        provider_reference=str(payload["transactionId"]),
        our_reference=charge.reference,
        amount=charge.amount,
        currency=charge.currency,
        message=str(payload.get("message", "")),
    )


def bank_checkout(client: AzamPayClient, charge: ChargeRequest) -> ProviderResult:
    bank = (charge.extra.get("bank") or "").upper()
    if bank not in BANK_CHANNELS:
        raise ProviderError("Choose CRDB or NMB for a bank payment.")
    body = {
        "amount": whole(charge.amount),
        "currencyCode": charge.currency,  # not "currency": the bank call names it differently
        "merchantAccountNumber": charge.extra.get("account_number", ""),
        "merchantMobileNumber": charge.msisdn,
        "merchantName": charge.extra.get("account_name", ""),
        "otp": charge.extra.get("otp", ""),
        "provider": bank,
        "referenceId": charge.reference,
        "additionalProperties": {"reference": charge.reference},
    }
    response = client.api.request("POST", BANK_CHECKOUT_PATH, json=body, headers=client.headers(), moves_money=True)
    client.forget_token_if_refused(response)
    payload = response_object(response)
    data = payload.get("data")
    properties = (data.get("properties") if isinstance(data, dict) else None) or {}
    transaction_id = properties.get("ReferenceID") or payload.get("transactionId")
    if response.status_code != 200 or payload.get("success") is False or not transaction_id:
        raise ProviderError(refusal(payload, "The bank did not accept the payment."), status_code=response.status_code)
    return ProviderResult(
        status=PaymentStatus.PENDING,
        provider_reference=str(transaction_id),
        our_reference=charge.reference,
        amount=charge.amount,
        currency=charge.currency,
        message=str(payload.get("msg") or payload.get("message") or ""),
    )


def hosted_checkout(client: AzamPayClient, charge: ChargeRequest, *, vendor_id: str) -> ProviderResult:
    """A card checkout page. Opening it moves no money (the donor pays on the page), so it is not ambiguous."""
    body = {
        "appName": client.app_name,
        "clientId": client.client_id,
        "vendorId": vendor_id,
        "vendorName": client.app_name,
        "amount": whole(charge.amount),
        "currency": charge.currency,
        "language": "en",
        "externalId": hosted_external_id(charge.reference),
        "requestOrigin": _origin(charge.success_url),
        "redirectSuccessURL": charge.success_url,
        "redirectFailURL": charge.failure_url,
        "cart": {"items": [{"name": charge.description or "Donation"}]},
    }
    response = client.api.request("POST", HOSTED_CHECKOUT_PATH, json=body, headers=client.headers())
    client.forget_token_if_refused(response)
    url = response.text.strip().strip('"')  # a plain (sometimes quoted) URL, not JSON
    if response.status_code != 200 or not url.startswith(("http://", "https://")):
        raise ProviderError("AzamPay did not open a card checkout page.", status_code=response.status_code)
    return ProviderResult(
        status=PaymentStatus.PENDING,
        # The hosted page has no transaction id of its own yet: the callback's utilityref finds us.
        provider_reference="",
        our_reference=charge.reference,
        amount=charge.amount,
        currency=charge.currency,
        checkout_url=url,
    )


def hosted_external_id(reference: str) -> str:
    return reference[:HOSTED_EXTERNAL_ID_MAX]


def whole(amount: Decimal) -> str:
    return str(int(amount))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""


__all__ = ["CARD_CHANNEL", "bank_checkout", "hosted_checkout", "mno_checkout"]
