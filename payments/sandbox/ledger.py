"""The simulators' wallets for the month close: what a run took in (`received`, `wallet`, also read by
daraja/ledger.py for Account Balance and Pull Transactions), and the balance answers of MTN (collection and
disbursement, `{"availableBalance", "currency"}`) and Airtel (`/standard/v1/users/balance`, the balance with
commas), as mixins of their simulators. Shapes: docs/providers/mtn.md and airtel.md ("Wallet balance").
"""

import re
from decimal import Decimal
from typing import Any

from payments.sandbox.base import Endpoint, endpoint
from payments.sandbox.outcomes import Result
from payments.sandbox.protocol import SandboxRequest, SandboxResponse, json_response
from payments.sandbox.store import Charge

OPENING = {"mpesa": Decimal("100000.00"), "mtn": Decimal("50000"), "airtel": Decimal("37600.00")}


def received(store: Any, provider: str) -> list[Charge]:
    """The collections of this run that succeeded (money in the simulated wallet)."""
    return [
        c
        for c in store.find_charges(provider=provider)
        if c.extra.get("kind") == "c2b" or (c.extra.get("kind") is None and c.state() == Result.SUCCESS.value)
    ]


def wallet(store: Any, provider: str) -> Decimal:
    return OPENING[provider] + sum((Decimal(c.amount) for c in received(store, provider)), Decimal("0"))


class MtnBalanceRoutes:
    def _authorize(self, request: SandboxRequest, product: str) -> str:
        raise NotImplementedError

    store: Any

    def balance_endpoints(self) -> list[Endpoint]:
        return [endpoint("GET", r"/(?P<product>collection|disbursement)/v1_0/account/balance", self.account_balance)]

    def account_balance(self, request: SandboxRequest, found: re.Match[str]) -> SandboxResponse:
        product = found["product"]
        from payments.sandbox.mtn.scripts import ENVIRONMENT_CURRENCIES  # the package imports this module

        environment = self._authorize(request, product)
        figure = wallet(self.store, "mtn") if product == "collection" else Decimal("20000")
        return json_response(200, {"availableBalance": f"{figure:f}", "currency": ENVIRONMENT_CURRENCIES[environment]})


class AirtelBalanceRoutes:
    store: Any

    def _authorize(self, request: SandboxRequest) -> None:
        raise NotImplementedError

    def _routing(self, request: SandboxRequest) -> tuple[str, str]:
        raise NotImplementedError

    def balance_endpoints(self) -> list[Endpoint]:
        return [endpoint("GET", r"/standard/v1/users/balance", self.wallet_balance)]

    def wallet_balance(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        self._authorize(request)
        _country, currency = self._routing(request)
        return json_response(
            200,
            {
                "data": {
                    "balance": f"{wallet(self.store, 'airtel'):,.2f}",
                    "currency": currency,
                    "account_status": "Active",
                },
                "status": {
                    "code": "200",
                    "message": "SUCCESS",
                    "result_code": "ESB000010",
                    "response_code": "DP02100000001",
                    "success": False,
                },
            },
        )
