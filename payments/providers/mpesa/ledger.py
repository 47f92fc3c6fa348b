"""What M-Pesa tells the month close about its own books: Daraja's Account Balance (asynchronous: accepted
now, the result POSTed to our result URL with the initiator URLs' secret) and the Pull Transactions API (the
C2B transactions of our shortcode in the last 48 hours, by offset pages; `[[]]` when there are none). HTTP and
translation only. Shapes, codes and what is unconfirmed: docs/providers/mpesa.md ("Account Balance", "Pull
Transactions")."""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from payments.providers.base import (
    BalanceAnswer,
    BalanceResult,
    CallbackMalformed,
    ProviderError,
    PulledTransaction,
)
from payments.providers.http import response_object
from payments.providers.mpesa.client import NAIROBI, DarajaClient, refusal
from payments.providers.mpesa.codes import clean_desc
from payments.providers.mpesa.fields import initiator_result, result_parameters, text_field

BALANCE_PATH = "/mpesa/accountbalance/v1/query"
PULL_REGISTER_PATH = "/pulltransactions/v1/register"
PULL_QUERY_PATH = "/pulltransactions/v1/query"
SHORTCODE_IDENTIFIER = "4"
PULL_REGISTERED = ("1000", "1001")  # registered now / already registered
PULL_FOUND = "1000"
PULL_NONE = "1001"  # nothing in the window: the body's list is `[[]]`


@dataclass(frozen=True)
class Initiator:
    shortcode: str  # PartyA: the shortcode whose balance is asked (the paybill's)
    initiator_name: str
    security_credential: str


def request_balance(client: DarajaClient, initiator: Initiator, *, result_url: str, timeout_url: str) -> BalanceAnswer:
    """Ask for the balance of every account of the shortcode; the result comes to `result_url`."""
    if not (initiator.initiator_name and initiator.security_credential):
        raise ProviderError("M-Pesa Account Balance needs MPESA_INITIATOR_NAME and MPESA_SECURITY_CREDENTIAL.")
    body = {
        "Initiator": initiator.initiator_name,
        "SecurityCredential": initiator.security_credential,
        "CommandID": "AccountBalance",
        "PartyA": initiator.shortcode,
        "IdentifierType": SHORTCODE_IDENTIFIER,
        "Remarks": "Month close",
        "QueueTimeOutURL": timeout_url,
        "ResultURL": result_url,
    }
    response = client.api.request("POST", BALANCE_PATH, json=body, headers=client.headers())
    payload = response_object(response)
    conversation = str(payload.get("ConversationID") or "").strip()
    if response.status_code != 200 or str(payload.get("ResponseCode", "")).strip() != "0" or not conversation:
        client.forget_token_if_refused(payload)
        raise ProviderError(
            refusal(payload, "M-Pesa did not accept the balance query."),
            retryable=response.status_code >= 500,
            status_code=response.status_code,
        )
    return BalanceAnswer(
        conversation_id=conversation,
        originator_id=str(payload.get("OriginatorConversationID") or "").strip(),
        raw=response.text[:2000],
        message=str(payload.get("ResponseDescription") or ""),
    )


def parse_balance_result(body: bytes) -> BalanceResult:
    """`{"Result": {ResultCode, ConversationID, ResultParameters: {ResultParameter: [{Key: AccountBalance,
    Value: "Working Account|KES|…&…"}, {Key: BOCompletedTime, Value: 20200109125710}]}}}`; a queue timeout
    comes in the same envelope with a code other than 0."""
    result, conversation, code = initiator_result(body)
    values = result_parameters(result)
    text = values.get("AccountBalance")
    if code == "0" and not isinstance(text, str):
        raise CallbackMalformed("a successful balance result needs ResultParameters' AccountBalance text")
    return BalanceResult(
        conversation_id=conversation,
        originator_id=text_field(result, "OriginatorConversationID"),
        result_code=code,
        message=f"{clean_desc(result.get('ResultDesc'))} (M-Pesa {code})"[:255],
        accounts_text=text if isinstance(text, str) and code == "0" else "",
        completed_at=_compact_time(values.get("BOCompletedTime")),
    )


def _compact_time(value: object) -> datetime | None:
    """Daraja's YYYYMMDDHHMMSS (a number or a string), Nairobi time; None when absent or unreadable."""
    try:
        return datetime.strptime(str(value).strip(), "%Y%m%d%H%M%S").replace(tzinfo=NAIROBI)
    except ValueError:
        return None


def register_pull(client: DarajaClient, *, shortcode: str, nominated_number: str, callback_url: str) -> str:
    """The one-time registration of the shortcode for pulling; "already registered" is fine too."""
    if not nominated_number:
        raise ProviderError("M-Pesa Pull registration needs MPESA_PULL_NOMINATED_NUMBER (the org's Safaricom number).")
    body = {
        "ShortCode": shortcode,
        "RequestType": "Pull",
        "NominatedNumber": nominated_number,
        "CallBackURL": callback_url,
    }
    response = client.api.request("POST", PULL_REGISTER_PATH, json=body, headers=client.headers())
    payload = response_object(response)
    status = str(payload.get("ResponseStatus") or payload.get("ResponseCode") or "").strip()
    if response.status_code != 200 or status not in PULL_REGISTERED:
        client.forget_token_if_refused(payload)
        raise ProviderError(
            refusal(payload, "M-Pesa did not register the shortcode for pulling."), status_code=response.status_code
        )
    return str(payload.get("ResponseDescription") or "Shortcode Registered Successfully")


def pull_page(
    client: DarajaClient, *, shortcode: str, start: datetime, end: datetime, offset: int
) -> tuple[PulledTransaction, ...]:
    """One page of C2B transactions between `start` and `end` (sent in Nairobi time), from row `offset`."""
    body = {
        "ShortCode": shortcode,
        "StartDate": start.astimezone(NAIROBI).strftime("%Y-%m-%d %H:%M:%S"),
        "EndDate": end.astimezone(NAIROBI).strftime("%Y-%m-%d %H:%M:%S"),
        "OffSetValue": str(offset),
    }
    response = client.api.request("POST", PULL_QUERY_PATH, json=body, headers=client.headers())
    try:  # amounts as Decimal from the very bytes: never through a float
        payload = json.loads(response.text, parse_float=Decimal)
    except ValueError:
        payload = {}
    payload = payload if isinstance(payload, dict) else {}
    code = str(payload.get("ResponseCode") or "").strip()
    if response.status_code != 200 or code not in (PULL_FOUND, PULL_NONE):
        client.forget_token_if_refused(payload)
        raise ProviderError(
            refusal(
                payload, f"M-Pesa did not answer the pull query (HTTP {response.status_code}, code {code or '—'})."
            ),
            retryable=response.status_code >= 500,
            status_code=response.status_code,
        )
    rows = _rows(payload.get("Response", payload.get("Transaction")))
    return tuple(_transaction(row, number) for number, row in enumerate(rows, start=offset + 1))


def _rows(value: object) -> list[Mapping]:
    """The transactions of an answer: `[[{…}, …]]`, `[{…}, …]`, `[[]]` or the text "[[]]" (none)."""
    if isinstance(value, str):
        text = value
        try:
            value = json.loads(text, parse_float=Decimal)
        except ValueError:
            raise ProviderError(f"M-Pesa's pull answer is not readable: {text[:60]!r}") from None
    if value is None:
        return []
    if not isinstance(value, list):
        raise ProviderError("M-Pesa's pull answer holds no list of transactions.")
    flat = [item for group in value for item in (group if isinstance(group, list) else [group])]
    if not all(isinstance(item, Mapping) for item in flat):
        raise ProviderError("M-Pesa's pull answer holds something that is not a transaction.")
    return flat


def _transaction(row: Mapping, number: int) -> PulledTransaction:
    receipt = str(row.get("transactionId") or "").strip()
    if not receipt:
        raise ProviderError(f"M-Pesa's pulled transaction {number} has no transactionId.")
    try:
        amount = Decimal(str(row.get("amount")).replace(",", "").strip())
    except InvalidOperation:
        raise ProviderError(f"M-Pesa's pulled transaction {receipt}: amount {row.get('amount')!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise ProviderError(f"M-Pesa's pulled transaction {receipt}: amount {row.get('amount')!r}")
    text = str(row.get("trxDate") or "").strip().replace("Z", "+00:00")
    try:
        occurred = datetime.fromisoformat(text)
    except ValueError:
        raise ProviderError(f"M-Pesa's pulled transaction {receipt}: trxDate {text!r}") from None
    occurred = occurred.replace(tzinfo=NAIROBI) if occurred.tzinfo is None else occurred.astimezone(UTC)
    return PulledTransaction(
        receipt=receipt[:100],
        occurred_at=occurred,
        amount=amount.quantize(Decimal("0.01")),
        msisdn=str(row.get("msisdn") or "")[:128],
        bill_reference=str(row.get("billreference") or "")[:100],
        transaction_type=str(row.get("transactiontype") or "")[:40],
    )
