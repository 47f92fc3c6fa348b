"""AzamPay's status query. Its path and parameter names are settings: AzamPay has published more than one
(docs/providers/azampay.md). Its free text is read conservatively (codes.STATUS_MAP)."""

from dataclasses import dataclass

from payments.providers.azampay.client import AzamPayClient, refusal
from payments.providers.azampay.codes import CURRENCY, normalize_channel, status_from_text
from payments.providers.base import PaymentRef, PaymentStatus, ProviderError, ProviderResult, parse_money
from payments.providers.http import response_json


@dataclass(frozen=True)
class StatusEndpoint:
    path: str
    id_param: str
    provider_param: str


def fetch_status(client: AzamPayClient, endpoint: StatusEndpoint, ref: PaymentRef) -> ProviderResult:
    if not ref.provider_reference:
        return ProviderResult(
            status=PaymentStatus.UNKNOWN,
            message="No AzamPay transaction id to ask about yet.",
        )
    params = {endpoint.id_param: ref.provider_reference}
    if endpoint.provider_param:
        params[endpoint.provider_param] = normalize_channel(ref.channel) or ref.channel
    response = client.api.request("GET", endpoint.path, params=params, headers=client.headers())
    client.forget_token_if_refused(response)
    payload = response_json(response)
    if isinstance(payload, list):  # some documented examples wrap the object in an array
        payload = payload[0] if payload and isinstance(payload[0], dict) else {}
    if response.status_code >= 500:
        raise ProviderError("AzamPay's status service failed.", retryable=True, status_code=response.status_code)
    if response.status_code != 200 or payload.get("success") is False and not payload.get("data"):
        raise ProviderError(
            refusal(payload, "AzamPay did not answer the status query."), status_code=response.status_code
        )
    # The transaction's state is in `data` (or `transactionstatus`); the envelope's "Request successful."
    # only says the query worked, so it must never be read as a payment's success.
    data = payload.get("data")
    text = data if isinstance(data, str) else ""
    status = status_from_text(str(payload.get("transactionstatus") or text))
    if status == PaymentStatus.FAILED and payload.get("transactionstatus") is None:
        status = status_from_text(text)  # "Transaction failed: timeout" → EXPIRED, not FAILED
    # AzamPay's documented answer names neither our reference nor the amount: it is about the id we asked, and
    # only that id binds it to a payment. A variant that does name them is read as it stands, never filled in.
    fields = {str(key).lower(): value for key, value in payload.items()}
    return ProviderResult(
        status=status,
        provider_reference=ref.provider_reference,
        our_reference=str(fields.get("utilityref") or fields.get("externalid") or ""),
        amount=parse_money(fields.get("amount")),
        currency=CURRENCY,
        receipt=str(fields.get("mnoreference") or ""),
        message=text or str(payload.get("message") or ""),
    )
