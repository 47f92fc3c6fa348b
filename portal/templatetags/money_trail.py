"""`{{ amount|money:currency }}`: amounts as people write them ("TSh 5,000", "KSh 2,500"), in the portal's
money-trail and share pages (the same words as the SMS receipts, donor.sms.money_for_people)."""

from decimal import Decimal

from django import template

from donor.sms import money_for_people

register = template.Library()


@register.filter
def money(amount: Decimal | None, currency: str) -> str:
    return money_for_people(amount or Decimal("0"), currency)
