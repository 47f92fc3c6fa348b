"""What the M-Pesa adapter tests share: the provider's test credentials, a charge, Daraja's token answer. The far
side is `responses` (each test activates it), at mpesa_fakes' host."""

from decimal import Decimal

import responses
from responses import matchers

from payments.providers.base import ChargeRequest
from payments.tests.mpesa_fakes import API, PASSKEY, SHORTCODE, TOKEN_URL, fixture

REFERENCE = "RHCI-DN-7-20260101120000"
CHECKOUT_ID = "ws_CO_1007202409152617172396192"
KWARGS = {
    "consumer_key": "test-consumer-key",
    "consumer_secret": "test-consumer-secret",
    "shortcode": SHORTCODE,
    "passkey": PASSKEY,
    "api_url": API,
}


def charge(amount="1000", msisdn="254712345678", **kw) -> ChargeRequest:
    return ChargeRequest(
        reference=REFERENCE,
        amount=Decimal(amount),
        currency=kw.pop("currency", "KES"),
        msisdn=msisdn,
        callback_url="https://donate.example.org/webhooks/mpesa/stkpush/tok123/",
        **kw,
    )


def token_ok():
    responses.get(
        TOKEN_URL,
        json=fixture("token_success.json"),
        match=[matchers.query_param_matcher({"grant_type": "client_credentials"})],
    )
