"""M-Pesa paybill (C2B v2): the payer pays our shortcode with an account number from their own phone.

Daraja calls the validation URL (when Safaricom enabled external validation) and the confirmation URL, both
registered once with their secret (MPESA_C2B_TOKEN). `MSISDN` is a 64-hex hash since July 2024 (masked
before): a payer reference, never a phone number. Shapes and codes: docs/providers/mpesa.md.
"""

from payments.providers.base import (
    CallbackMalformed,
    PaybillPayment,
    PaybillRejection,
    ProviderError,
    load_json_object,
    parse_money,
)
from payments.providers.http import response_object
from payments.providers.mpesa.client import DarajaClient, refusal
from payments.providers.mpesa.codes import C2B_FORBIDDEN_URL_WORDS, C2B_RESPONSE_TYPES
from payments.providers.mpesa.fields import text_field

C2B_REGISTER_PATH = "/mpesa/c2b/v2/registerurl"
ACCEPT = "0"
REJECTION_CODES = {
    PaybillRejection.ACCOUNT: "C2B00012",
    PaybillRejection.AMOUNT: "C2B00013",
    PaybillRejection.SHORTCODE: "C2B00015",
    PaybillRejection.OTHER: "C2B00016",
}


def parse_c2b(body: bytes) -> PaybillPayment:
    """A C2B validation/confirmation body; CallbackMalformed names the missing or wrong-typed field."""
    data = load_json_object(body)
    trans_id = text_field(data, "TransID", required=True)
    if not trans_id:
        raise CallbackMalformed("TransID must not be empty")
    raw_amount = data.get("TransAmount")
    if isinstance(raw_amount, bool) or not isinstance(raw_amount, str | int | float):
        raise CallbackMalformed('TransAmount is required: a number as a string, e.g. "100.00"')
    amount = parse_money(raw_amount)
    if amount is None or amount <= 0:
        raise CallbackMalformed("TransAmount must be a positive amount")
    names = [text_field(data, key) for key in ("FirstName", "MiddleName", "LastName")]
    return PaybillPayment(
        transaction_id=trans_id,
        time=text_field(data, "TransTime", required=True),
        amount=amount,
        shortcode=text_field(data, "BusinessShortCode", required=True),
        account=text_field(data, "BillRefNumber", required=True),
        transaction_type=text_field(data, "TransactionType"),
        payer_id=text_field(data, "MSISDN"),
        payer_name=" ".join(n for n in names if n).strip(),
    )


def validation_answer(rejection: PaybillRejection | None) -> dict:
    """`"0"`/Accepted, or a C2B000xx code with "Rejected"."""
    if rejection is None:
        return {"ResultCode": ACCEPT, "ResultDesc": "Accepted"}
    return {"ResultCode": REJECTION_CODES[rejection], "ResultDesc": "Rejected"}


def register_urls(
    client: DarajaClient, *, shortcode: str, confirmation_url: str, validation_url: str, response_type: str
) -> dict:
    """Register the C2B URLs for the paybill (one-time in production: delete the old ones first)."""
    if response_type not in C2B_RESPONSE_TYPES:
        raise ProviderError(f"ResponseType must be exactly {' or '.join(C2B_RESPONSE_TYPES)}.")
    body = {
        "ShortCode": shortcode,
        "ResponseType": response_type,
        "ConfirmationURL": confirmation_url,
        "ValidationURL": validation_url,
    }
    response = client.api.request("POST", C2B_REGISTER_PATH, json=body, headers=client.headers())
    payload = response_object(response)
    if response.status_code != 200 or str(payload.get("ResponseCode", "")).strip() != "0":
        client.forget_token_if_refused(payload)
        raise ProviderError(refusal(payload, "M-Pesa did not register the C2B URLs."), status_code=response.status_code)
    return payload


def url_problems(url: str) -> list[str]:
    """The words in a C2B URL that Daraja refuses."""
    lowered = url.lower()
    return [word for word in C2B_FORBIDDEN_URL_WORDS if word in lowered]
