"""Wallet balances as providers report them (pure parsers; docs/providers/mpesa.md "Account Balance")."""

from dataclasses import dataclass
from decimal import Decimal

from finance.parsers import money


@dataclass(frozen=True)
class AccountBalance:
    name: str  # "Working Account", "Utility Account", "Charges Paid Account", …
    currency: str
    available: Decimal
    uncleared: Decimal
    reserved: Decimal
    unreserved: Decimal


class BalanceUnreadable(ValueError):
    pass


def parse_daraja_balance(text: str) -> dict[str, AccountBalance]:
    """Daraja's `AccountBalance` result value: accounts separated by `&`, each
    `name|currency|available|uncleared|reserved|unreserved` (the last figures may be missing: read as 0).

    >>> parse_daraja_balance("Working Account|KES|700000.00|700000.00|0.00|0.00")["Working Account"].available
    Decimal('700000.00')
    """
    accounts: dict[str, AccountBalance] = {}
    for part in (text or "").strip().split("&"):
        if not part.strip():
            continue
        fields = [f.strip() for f in part.split("|")]
        if len(fields) < 3 or not fields[0]:
            raise BalanceUnreadable(f"account {part!r}: expected name|currency|available|…")
        name, currency, *figures = fields
        if len(currency) != 3 or not currency.isalpha():
            raise BalanceUnreadable(f"account {name!r}: currency {currency!r} is not a 3-letter code")
        try:
            values = [money(f, what=name, allow_negative=True) if f else Decimal("0.00") for f in figures[:4]]
        except ValueError as exc:
            raise BalanceUnreadable(str(exc)) from None
        values += [Decimal("0.00")] * (4 - len(values))
        if name in accounts:
            raise BalanceUnreadable(f"account {name!r} appears twice")
        accounts[name] = AccountBalance(name, currency.upper(), *values)
    if not accounts:
        raise BalanceUnreadable("no accounts in the balance result")
    return accounts
