"""Template filters for what people read: `{{ amount|money:currency }}` → "TSh 5,000" (donor.money, the one
formatter that emails and SMS use too), and `{{ when|ago }}` → "5 minutes ago" / "dakika 5 zilizopita" (Django's
timesince words are not in its Swahili catalogue, and Swahili puts "ago" in agreement with the unit, so each unit
carries its own "ago" here)."""

from datetime import datetime, timedelta
from decimal import Decimal

from django import template
from django.utils import timezone
from django.utils.timesince import timesince
from django.utils.translation import gettext as _
from django.utils.translation import ngettext_lazy

from donor.money import money_for_people

register = template.Library()

AGO = {
    "year": ngettext_lazy("%(num)d year ago", "%(num)d years ago", "num"),
    "month": ngettext_lazy("%(num)d month ago", "%(num)d months ago", "num"),
    "week": ngettext_lazy("%(num)d week ago", "%(num)d weeks ago", "num"),
    "day": ngettext_lazy("%(num)d day ago", "%(num)d days ago", "num"),
    "hour": ngettext_lazy("%(num)d hour ago", "%(num)d hours ago", "num"),
    "minute": ngettext_lazy("%(num)d minute ago", "%(num)d minutes ago", "num"),
}


@register.filter
def money(amount: Decimal | int | str | None, currency: str) -> str:
    return "" if amount in (None, "") else money_for_people(amount, currency or "")


@register.filter
def ago(when: datetime | None) -> str:
    if when is None:
        return ""
    if timezone.now() - when < timedelta(minutes=1):
        return _("just now")
    return timesince(when, time_strings=AGO, depth=1)
