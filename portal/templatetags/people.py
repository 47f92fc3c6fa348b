"""Template filters for what people read: `{{ amount|money:currency }}` → "TSh 5,000" (donor.money, the one
formatter that emails and SMS use too)."""

from decimal import Decimal

from django import template

from donor.money import money_for_people

register = template.Library()


@register.filter
def money(amount: Decimal | int | str | None, currency: str) -> str:
    return "" if amount in (None, "") else money_for_people(amount, currency or "")
