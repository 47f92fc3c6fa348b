"""Amounts as people write them: "TSh 5,000", "KSh 2,500", "USh 10,000". The one formatter for every page, email
and SMS (templates use it as the `money` filter of portal/templatetags/people.py)."""

from decimal import Decimal

CURRENCY_SHORT = {"TZS": "TSh", "KES": "KSh", "UGX": "USh"}


def money_for_people(amount: Decimal | int | str, currency: str) -> str:
    """5000 TZS → "TSh 5,000"; cents only when there are some (12.50 EUR → "EUR 12.50")."""
    symbol = CURRENCY_SHORT.get(currency.upper(), currency.upper())
    value = Decimal(str(amount))
    number = f"{value:,.0f}" if value == value.to_integral_value() else f"{value:,.2f}"
    return f"{symbol} {number}"
