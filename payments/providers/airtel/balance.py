"""Airtel Money's wallet balance: `GET /standard/v1/users/balance` answers `{"data": {"balance": "37,600.00",
"currency": "UGX", "account_status": "Active"}, "status": {"response_code": "DP02100000001", …}}` (the balance is
a formatted string with commas; `status.success` is not relied on). The disbursement wallet has no balance API
(docs/providers/airtel.md "Wallet balance"). HTTP and translation only."""

from collections.abc import Mapping

from payments.providers.airtel.client import AirtelClient, envelope, refusal
from payments.providers.base import BalanceAnswer, CallbackMalformed, ProviderError, WalletBalance, parse_money
from payments.providers.http import response_object

BALANCE_PATH = "/standard/v1/users/balance"
BALANCE_SUCCESS = "DP02100000001"
ACCOUNT = "wallet"


def request_balance(client: AirtelClient) -> BalanceAnswer:
    response = client.get(BALANCE_PATH)
    payload = response_object(response)
    answer = envelope(payload)
    data = payload.get("data")
    data = data if isinstance(data, Mapping) else {}
    if response.status_code != 200 or answer.response_code != BALANCE_SUCCESS:
        raise ProviderError(
            refusal(payload, "Airtel Money did not give the wallet balance."),
            retryable=response.status_code >= 500,
            status_code=response.status_code,
        )
    currency = str(data.get("currency") or client.currency).strip().upper()
    try:
        available = parse_money(data.get("balance"))
    except CallbackMalformed:
        available = None
    if len(currency) != 3 or available is None:
        raise ProviderError(f"Airtel Money's balance answer is not readable: {response.text[:80]!r}")
    return BalanceAnswer(readings=(WalletBalance(ACCOUNT, currency, available),), raw=response.text[:2000])
