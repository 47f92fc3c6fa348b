"""What a provider can tell the month close (finance) about its own books: wallet balances and, for M-Pesa,
the C2B transactions of the last hours (Daraja's Pull Transactions API). HTTP and translation only: what is
kept, and what a difference means, is finance's.

`WalletBalances.request_balance` answers at once with the readings (MTN, Airtel), or with the id of a query
whose result is POSTed later to our result URL (Daraja Account Balance: `parse_balance_result`).
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import ClassVar


@dataclass(frozen=True)
class WalletBalance:
    """One account's balance as the provider states it."""

    account: str  # "Utility Account" (Daraja), "collection" / "disbursement" (MTN), "wallet" (Airtel)
    currency: str
    available: Decimal
    uncleared: Decimal | None = None
    reserved: Decimal | None = None


@dataclass(frozen=True)
class BalanceAnswer:
    """The answer to a balance request: the readings, or (asynchronous rails) the query's id, its result later."""

    readings: tuple[WalletBalance, ...] = ()
    conversation_id: str = ""  # Daraja's ConversationID: the result names it
    originator_id: str = ""
    raw: str = ""  # the answer's body, kept with the readings
    message: str = ""


@dataclass(frozen=True)
class BalanceResult:
    """A balance result callback (Daraja's `{"Result": …}` at the result or queue-timeout URL)."""

    conversation_id: str
    originator_id: str
    result_code: str
    message: str
    accounts_text: str  # Daraja's `AccountBalance` value: `name|currency|available|…&…`; "" when it failed
    completed_at: datetime | None  # BOCompletedTime: the moment the balance holds for

    @property
    def succeeded(self) -> bool:
        return self.result_code == "0"


class WalletBalances(ABC):
    """Ask the provider for the balance of our account(s)."""

    balance_accounts: ClassVar[tuple[str, ...]] = ("wallet",)  # what `account` may name
    balance_is_asynchronous: ClassVar[bool] = False

    @abstractmethod
    def request_balance(self, *, account: str, result_url: str = "", timeout_url: str = "") -> BalanceAnswer:
        """One balance request. ProviderError when it is refused or cannot be read."""

    def parse_balance_result(self, kind: str, body: bytes) -> BalanceResult:
        """A balance result callback (asynchronous rails). CallbackMalformed when it cannot be read."""
        raise NotImplementedError


@dataclass(frozen=True)
class PulledTransaction:
    """One C2B transaction of the provider's pull API."""

    receipt: str  # the provider's transaction id (M-Pesa receipt)
    occurred_at: datetime  # aware
    amount: Decimal
    msisdn: str = ""  # as given: a number, or a hash (C2B v2 masks the payer)
    bill_reference: str = ""  # the account number the payer typed (paybill)
    transaction_type: str = ""


class StatementPull(ABC):
    """Read the provider's own record of money received, by time window and offset pages."""

    pull_window: ClassVar[timedelta]  # how far back the provider keeps transactions for pulling
    pull_currency: ClassVar[str]

    @abstractmethod
    def register_pull(self, *, callback_url: str) -> str:
        """The one-time registration of our shortcode for pulling; returns the provider's words."""

    @abstractmethod
    def pull_transactions(self, *, start: datetime, end: datetime, offset: int) -> tuple[PulledTransaction, ...]:
        """One page from `offset` (0 first); an empty tuple: no more. ProviderError when refused."""
