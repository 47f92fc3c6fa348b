"""MTN MoMo's account balance, per product: `GET /collection/v1_0/account/balance` and
`GET /disbursement/v1_0/account/balance`, each with its product's token and subscription key. The answer is
`{"availableBalance": "1000", "currency": "EUR"}` (docs/providers/mtn.md "Account balance"). HTTP and
translation only: the month close (finance) keeps the reading."""

from payments.providers.base import BalanceAnswer, CallbackMalformed, ProviderError, WalletBalance, parse_money
from payments.providers.http import response_object
from payments.providers.mtn.client import NAME, MtnClient

BALANCE_PATH = "/{product}/v1_0/account/balance"


def request_balance(client: MtnClient, product: str) -> BalanceAnswer:
    if product not in client.products or not client.products[product].subscription_key:
        raise ProviderError(f"{NAME} has no {product} product configured (its subscription key is not set).")
    response = client.request(product, "GET", BALANCE_PATH.format(product=product))
    payload = response_object(response)
    if response.status_code != 200:
        text = str(payload.get("message") or payload.get("code") or "")[:100]
        raise ProviderError(
            f"{NAME} did not give the {product} balance (HTTP {response.status_code}{': ' + text if text else ''}).",
            retryable=response.status_code >= 500,
            status_code=response.status_code,
        )
    currency = str(payload.get("currency") or "").strip().upper()
    try:
        available = parse_money(payload.get("availableBalance"))
    except CallbackMalformed:
        available = None
    if len(currency) != 3 or available is None:
        raise ProviderError(f"{NAME}'s {product} balance answer is not readable: {response.text[:80]!r}")
    return BalanceAnswer(readings=(WalletBalance(product, currency, available),), raw=response.text[:2000])
