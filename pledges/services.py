"""Pledge rules: create (the donation's own checks), the donor's actions by signed link, and their messages.
The monthly run is pledges.run.

Messages go straight out (SMS by donor.sms, which is once per key; email): a pledge's messages belong to no
donation, so they are not outbox rows; a failed send is logged and not retried (the next month's still go).
"""

import calendar
import logging
from datetime import date, datetime
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from donor.models import Donor
from donor.money import money_for_people
from donor.services import donation_rules_check, donor_for_guest, donor_for_user, donor_language, parse_amount
from donor.sms import sms_send
from payments.services.donations import DonationRefused, DonationRequest, donation_check
from pledges.models import Pledge, PledgeCycle

logger = logging.getLogger("payments.pledges")

MANAGE_SALT = "pledges.manage"  # one salt per purpose: a manage link is no pay link and vice versa
PAY_SALT = "pledges.pay"


# --- Dates ---------------------------------------------------------------------------------------------------


def due_date_after(day_of_month: int, after: date) -> date:
    """The first date strictly after `after` that falls on `day_of_month` (1–28 exists in every month)."""
    candidate = after.replace(day=day_of_month)
    if candidate <= after:
        year, month = (after.year + 1, 1) if after.month == 12 else (after.year, after.month + 1)
        candidate = date(year, month, day_of_month)
    assert day_of_month <= calendar.monthrange(candidate.year, candidate.month)[1]
    return candidate


def in_prompt_hours(now: datetime) -> bool:
    start, end = settings.PLEDGE_PROMPT_HOURS
    return start <= timezone.localtime(now).hour < end


# --- Links ---------------------------------------------------------------------------------------------------


def manage_token(pledge: Pledge) -> str:
    return signing.dumps(pledge.pk, salt=MANAGE_SALT)


def manage_url(pledge: Pledge) -> str:
    return settings.SITE_URL + reverse("pledge-manage", kwargs={"token": manage_token(pledge)})


def pay_url(cycle: PledgeCycle) -> str:
    token = signing.dumps(cycle.pk, salt=PAY_SALT)
    return settings.SITE_URL + reverse("pledge-pay", kwargs={"token": token})


def pledge_for_token(token: str) -> Pledge | None:
    """The one pledge a manage link was made for; None for a link that is not one (edited, another purpose's)."""
    try:
        pk = signing.loads(token, salt=MANAGE_SALT)
    except signing.BadSignature:
        return None
    return Pledge.objects.select_related("donor", "patient").filter(pk=pk).first() if isinstance(pk, int) else None


def cycle_for_pay_token(token: str) -> PledgeCycle | None:
    try:
        pk = signing.loads(token, salt=PAY_SALT)
    except signing.BadSignature:
        return None
    return PledgeCycle.objects.select_related("pledge").filter(pk=pk).first() if isinstance(pk, int) else None


# --- Creating ------------------------------------------------------------------------------------------------


def pledge_create(request: DonationRequest, *, day_of_month: object, user: User | AnonymousUser | None,
                  today: date | None = None) -> Pledge:  # fmt: skip
    """A pledge, checked by the donation's own rules (DonationRefused names each field; ProviderUnavailable)."""
    errors: dict[str, str] = {}
    try:
        day = int(str(day_of_month))
        if str(day) != str(day_of_month).strip() or not 1 <= day <= 28:
            raise ValueError
    except ValueError:
        errors["day_of_month"] = _("Choose a day of the month from 1 to 28.")
        day = 0
    try:
        checked = donation_check(request)
    except DonationRefused as refused:
        raise DonationRefused({**refused.errors, **errors}) from refused
    if errors:
        raise DonationRefused(errors)
    if not checked.msisdn:
        raise DonationRefused({"phone_number": _("A monthly pledge needs the phone that will be prompted.")})
    if not checked.method.needs_phone:  # a card page cannot be pushed to the donor each month
        raise DonationRefused({"channel": _("Monthly giving uses a mobile money prompt: choose mobile money.")})
    try:  # the donation's own rules (limits, the patient's currency), as each month's donation will meet them
        donation_rules_check(patient=checked.patient, amount=request.amount, currency=request.currency)
    except ValidationError as exc:
        raise DonationRefused({k: " ".join(v) for k, v in exc.message_dict.items()}) from exc
    with transaction.atomic():
        donor = (
            donor_for_user(user=user, language=donor_language())
            if user is not None and user.is_authenticated
            else donor_for_guest(name=request.name, email=request.email, phone=checked.msisdn)
        )
        pledge = Pledge.objects.create(
            donor=donor,
            msisdn=checked.msisdn,
            provider=checked.method.provider,
            channel=checked.method.channel,
            amount=request.amount,
            currency=request.currency.upper(),
            patient=checked.patient,
            day_of_month=day,
            next_due_on=due_date_after(day, today or timezone.localdate()),
            language=donor_language(),  # its reminders and prompts' messages: the page's or the API request's
        )
    logger.info("Pledge %s created: %s %s on day %s", pledge.reference, pledge.currency, pledge.amount, day)
    return pledge


def pledge_list_for_donor(*, donor: Donor) -> list[Pledge]:
    """A donor's pledges, newest first, their patient loaded."""
    return list(Pledge.objects.filter(donor=donor).select_related("patient").order_by("-created_at", "-pk"))


# --- Messages ------------------------------------------------------------------------------------------------


def pledge_tell(pledge: Pledge, *, key: str, sms: str, subject: str, body: str) -> None:
    """SMS to the pledge's phone (once per key) and an email when the donor gave one. Never raises."""
    try:
        error = sms_send(key=f"pledge:{pledge.pk}:{key}", msisdn=pledge.msisdn, text=sms)
        if error:
            logger.warning("Pledge %s: SMS %s not sent: %s", pledge.reference, key, error)
    except Exception:  # a message must never stop the month's prompt
        logger.exception("Pledge %s: SMS %s failed", pledge.reference, key)
    if pledge.donor.email:
        try:
            EmailMessage(subject=subject, body=body, to=[pledge.donor.email]).send()
        except OSError as exc:
            logger.warning("Pledge %s: email %s not sent: %s", pledge.reference, key, exc)


def pledge_money(pledge: Pledge, amount: Decimal | None = None) -> str:
    return money_for_people(amount if amount is not None else pledge.amount, pledge.currency)


def pledge_target(pledge: Pledge) -> str:
    return pledge.patient.code if pledge.patient else _("the general fund")


# --- The donor's actions (the manage page) -------------------------------------------------------------------


class PledgeActionRefused(Exception):
    pass


ACTIONS = ("skip", "pause", "resume", "cancel", "change")


def pledge_act(pledge: Pledge, action: str, *, amount: str = "", today: date | None = None) -> str:
    """Apply one action; returns what to tell the donor (also sent to them). PledgeActionRefused: not now."""
    today = today or timezone.localdate()
    with transaction.atomic():
        pledge = Pledge.objects.select_for_update().get(pk=pledge.pk)
        if pledge.status in (Pledge.Status.CANCELLED, Pledge.Status.LAPSED) and action != "cancel":
            raise PledgeActionRefused(_("This pledge has ended; start a new one to give monthly again."))
        if action == "skip":
            if pledge.status != Pledge.Status.ACTIVE:
                raise PledgeActionRefused(_("Only an active pledge has a next payment to skip."))
            pledge.skip_next = True
            said = _("Your payment due %(date)s will be skipped.") % {"date": pledge.next_due_on.isoformat()}
        elif action == "pause":
            pledge.status = Pledge.Status.PAUSED
            said = _("Your monthly pledge is paused. Resume it any time with your link.")
        elif action == "resume":
            if pledge.status != Pledge.Status.PAUSED:
                raise PledgeActionRefused(_("This pledge is not paused."))
            pledge.status = Pledge.Status.ACTIVE
            pledge.consecutive_misses = 0
            pledge.next_due_on = due_date_after(pledge.day_of_month, today)
            said = _("Your monthly pledge is active again; next payment %(date)s.") % {
                "date": pledge.next_due_on.isoformat()}  # fmt: skip
        elif action == "cancel":
            if pledge.status == Pledge.Status.CANCELLED:
                return _("This pledge is cancelled.")
            pledge.status = Pledge.Status.CANCELLED
            said = _("Your monthly pledge is cancelled. Thank you for your gifts.")
        elif action == "change":
            new_amount = _checked_amount(pledge, amount)
            pledge.amount = new_amount
            said = _("From your next payment you give %(money)s a month.") % {"money": pledge_money(pledge, new_amount)}
        else:
            raise PledgeActionRefused(_("Unknown action."))
        pledge.language = donor_language()  # the donor's language now: this and later messages follow it
        pledge.save()
    stamp = timezone.now().strftime("%Y%m%d%H%M%S%f")
    pledge_tell(pledge, key=f"{action}:{stamp}", sms=f"{pledge.reference}: {said}",
                subject=_("Your monthly pledge %(ref)s") % {"ref": pledge.reference}, body=said)  # fmt: skip
    logger.info("Pledge %s: %s", pledge.reference, action)
    return said


def _checked_amount(pledge: Pledge, raw: str) -> Decimal:
    """The new amount under the donation's own checks (limits, whole units, the patient's currency)."""
    try:
        new_amount = parse_amount(raw)
    except ValidationError as exc:
        raise PledgeActionRefused(" ".join(exc.messages)) from exc
    request = DonationRequest(amount=new_amount, currency=pledge.currency, provider=pledge.provider,
                              channel=pledge.channel, phone_number=f"+{pledge.msisdn}",
                              patient_code=pledge.patient.code if pledge.patient else None)  # fmt: skip
    try:
        checked = donation_check(request)
        donation_rules_check(patient=checked.patient, amount=new_amount, currency=pledge.currency)
    except DonationRefused as refused:
        raise PledgeActionRefused(" ".join(refused.errors.values())) from refused
    except ValidationError as exc:
        raise PledgeActionRefused(" ".join(exc.messages)) from exc
    return new_amount
