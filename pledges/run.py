"""The monthly pledge run.

The run (`pledges_run`, `manage.py pledges_run`): two days before the due date one reminder; on the due date,
inside PLEDGE_PROMPT_HOURS, one payment prompt, an ordinary donation (payments.services.donations). A prompt that
timed out or never reached the phone (payment `expired`, or a start the provider refused before prompting) is sent
again once after about 2 hours and once the next day; one the donor cancelled or refused (`cancelled`, `failed`:
wrong PIN, no funds) is not: the donor gets a one-tap link to pay. A month not paid GRACE_DAYS after its due date
is missed; three missed months in a row lapse the pledge. Each step is claimed by a conditional UPDATE on the
month's row, so runs at once never repeat one.
"""

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from donor.models import Donation
from donor.services import donation_create
from integrations.sms import fit_sms
from payments.models import Payment
from payments.services.donations import DonationRefused, DonationRequest, donation_check, donation_pay
from payments.services.payments import PaymentStartFailed
from pledges.models import Pledge, PledgeCycle
from pledges.services import (
    due_date_after,
    in_prompt_hours,
    manage_url,
    pay_url,
    pledge_money,
    pledge_target,
    pledge_tell,
)

logger = logging.getLogger("payments.pledges")

REMIND_DAYS_BEFORE = 2
REPUSH_AFTER = timedelta(hours=2)
MAX_PUSHES = 3  # the first prompt, once after ~2 h, once the next day
GRACE_DAYS = 3
LAPSE_AFTER_MISSES = 3


@dataclass
class RunReport:
    reminded: int = 0
    prompted: int = 0
    paid: int = 0
    missed: int = 0
    skipped: int = 0
    lapsed: int = 0
    errors: list[str] = field(default_factory=list)


def pledges_run(now: datetime | None = None) -> RunReport:
    """Do what is due for every active pledge at `now` (default: the real time; a test moves it)."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    report = RunReport()
    due = Pledge.objects.filter(status=Pledge.Status.ACTIVE, next_due_on__lte=today + timedelta(REMIND_DAYS_BEFORE))
    for pledge in due.select_related("donor", "patient").order_by("next_due_on", "pk"):
        try:
            with translation.override(pledge.language or None):  # its messages in the donor's language
                _run_pledge(pledge, now, today, report)
        except Exception as exc:  # one pledge's trouble must not stop the others
            logger.exception("Pledge %s: run failed", pledge.reference)
            report.errors.append(f"{pledge.reference}: {type(exc).__name__}")
    return report


def _cycle(pledge: Pledge) -> PledgeCycle:
    try:
        with transaction.atomic():
            return PledgeCycle.objects.get_or_create(pledge=pledge, due_on=pledge.next_due_on)[0]
    except IntegrityError:  # another run created it first
        return PledgeCycle.objects.get(pledge=pledge, due_on=pledge.next_due_on)


def _claim(cycle: PledgeCycle, condition: dict, change: dict) -> bool:
    """Take one step of the month: True for exactly one of any number of runs at once."""
    return PledgeCycle.objects.filter(pk=cycle.pk, status=PledgeCycle.Status.OPEN, **condition).update(**change) == 1


def _run_pledge(pledge: Pledge, now: datetime, today: date, report: RunReport) -> None:
    cycle = _cycle(pledge)
    if cycle.status != PledgeCycle.Status.OPEN:
        _advance(pledge, cycle)  # closed by an earlier run that stopped before moving the pledge on
        return
    if today < cycle.due_on:
        if _claim(cycle, {"reminded_at__isnull": True}, {"reminded_at": now}):
            _remind(pledge, cycle)
            report.reminded += 1
        return
    if pledge.skip_next and cycle.pushes == 0:
        if _claim(cycle, {"pushes": 0}, {"status": PledgeCycle.Status.SKIPPED, "closed_at": now}):
            Pledge.objects.filter(pk=pledge.pk).update(skip_next=False)
            report.skipped += 1
        _advance(pledge, cycle)
        return
    payment = _latest_payment(cycle)
    outcome = _outcome(cycle, payment)
    if outcome == "paid":
        if _claim(cycle, {}, {"status": PledgeCycle.Status.PAID, "closed_at": now}):
            Pledge.objects.filter(pk=pledge.pk).update(consecutive_misses=0)
            report.paid += 1
        _advance(pledge, cycle)
        return
    if today > cycle.due_on + timedelta(GRACE_DAYS):
        _miss(pledge, cycle, now, report)
        return
    if outcome == "none":
        if in_prompt_hours(now) and _claim(cycle, {"pushes": 0}, {"pushes": 1, "last_push_at": now}):
            _prompt(pledge, cycle)
            report.prompted += 1
        return
    if outcome == "waiting":
        return
    if outcome == "unreached":  # timed out or never reached the phone: again after ~2 h, then the next day
        last = cycle.last_push_at or now
        again = (cycle.pushes == 1 and now >= last + REPUSH_AFTER) or (
            cycle.pushes == 2 and timezone.localdate(last) < today
        )
        if cycle.pushes >= MAX_PUSHES:
            _miss(pledge, cycle, now, report)
        elif again and in_prompt_hours(now):
            if _claim(cycle, {"pushes": cycle.pushes}, {"pushes": cycle.pushes + 1, "last_push_at": now}):
                _prompt(pledge, cycle)
                report.prompted += 1
        return
    # refused or cancelled by the donor: no new prompt; a link to pay when they choose (kept until GRACE_DAYS)
    if _claim(cycle, {"pay_link_sent_at__isnull": True}, {"pay_link_sent_at": now}):
        link = pay_url(cycle)
        text = _("Your %(money)s monthly gift was not paid. Pay with one tap: %(link)s") % {
            "money": pledge_money(pledge), "link": link}  # fmt: skip
        subject = _("Your monthly gift %(ref)s was not paid") % {"ref": pledge.reference}
        pledge_tell(pledge, key=f"paylink:{cycle.due_on}", sms=text, subject=subject, body=text)


def _latest_payment(cycle: PledgeCycle) -> Payment | None:
    if cycle.donation_id is None:
        return None
    return Payment.objects.filter(donation_id=cycle.donation_id).order_by("-pk").first()


def _outcome(cycle: PledgeCycle, payment: Payment | None) -> str:
    """none (not prompted yet) | waiting | paid | unreached (re-prompt) | refused (the donor said no)."""
    if cycle.donation_id is None:
        return "waiting" if cycle.pushes else "none"  # a prompt being started by another run
    donation = Donation.objects.only("status").get(pk=cycle.donation_id)
    if donation.status == Donation.Status.COMPLETED:
        return "paid"
    if payment is None or payment.status in (Payment.Status.CREATED, Payment.Status.PENDING):
        return "waiting" if payment is not None or donation.status == Donation.Status.PENDING else "unreached"
    if payment.status == Payment.Status.EXPIRED:
        return "unreached"
    if payment.status == Payment.Status.FAILED and not payment.provider_reference:
        return "unreached"  # refused before any prompt reached the phone (the provider was down, say)
    return "refused"


def _remind(pledge: Pledge, cycle: PledgeCycle) -> None:
    link = manage_url(pledge)
    values = {
        "money": pledge_money(pledge),
        "target": pledge_target(pledge),
        "date": cycle.due_on.strftime("%d/%m"),
        "link": link,
    }
    full = _("Reminder: your %(money)s monthly gift for %(target)s is due %(date)s. Skip or change: %(link)s")
    short = _("Your %(money)s gift is due %(date)s. Manage: %(link)s")
    # The link must survive: the shorter wording when the full one would not fit one SMS.
    text = fit_sms(full % values, short % values)
    subject = _("Your monthly gift is due on %(date)s") % {"date": cycle.due_on.isoformat()}
    pledge_tell(pledge, key=f"reminder:{cycle.due_on}", sms=text, subject=subject, body=full % values)


def _prompt(pledge: Pledge, cycle: PledgeCycle) -> None:
    """Start this month's donation, an ordinary one (the donation service's checks, donor, payment)."""
    patient = pledge.patient
    to_general_fund = patient is not None and not patient.is_accepting_donations
    if to_general_fund and not cycle.to_general_fund:
        PledgeCycle.objects.filter(pk=cycle.pk).update(to_general_fund=True)
        text = _("%(code)s is fully funded, thank you! This month's %(money)s goes to the general fund.") % {
            "code": patient.code if patient else "", "money": pledge_money(pledge)}  # fmt: skip
        pledge_tell(pledge, key=f"general-fund:{cycle.due_on}", sms=text,
                    subject=_("This month's gift goes to the general fund"), body=text)  # fmt: skip
    request = DonationRequest(
        amount=pledge.amount,
        currency=pledge.currency,
        provider=pledge.provider,
        channel=pledge.channel,
        phone_number=f"+{pledge.msisdn}",
        patient_code=None if to_general_fund or patient is None else patient.code,
        name=pledge.donor.name,
        email=pledge.donor.email,
        message=f"Monthly pledge {pledge.reference}",
    )
    try:
        checked = donation_check(request)
        with transaction.atomic():
            donation = donation_create(patient=checked.patient, amount=pledge.amount, currency=pledge.currency,
                                       donor=pledge.donor, message=request.message)  # fmt: skip
            PledgeCycle.objects.filter(pk=cycle.pk).update(donation=donation)
    except (DonationRefused, ValidationError) as refused:
        logger.warning("Pledge %s: month %s not prompted: %s", pledge.reference, cycle.due_on, refused)
        PledgeCycle.objects.filter(pk=cycle.pk).update(pushes=MAX_PUSHES)  # nothing will make it valid today
        return
    try:
        donation_pay(donation, checked)
    except PaymentStartFailed as failure:
        logger.warning("Pledge %s: prompt refused by the provider: %s", pledge.reference, failure.error.message)
    logger.info("Pledge %s: month %s prompted (donation %s)", pledge.reference, cycle.due_on, donation.reference)


def pledge_pay_now(cycle: PledgeCycle) -> bool:
    """The donor's one-tap pay link: one more prompt for an unpaid, open month. False: nothing to pay now."""
    now = timezone.now()
    if cycle.pledge.status != Pledge.Status.ACTIVE or _outcome(cycle, _latest_payment(cycle)) not in ("refused",):
        return False
    if not _claim(cycle, {"pushes": cycle.pushes}, {"pushes": cycle.pushes + 1, "last_push_at": now}):
        return False
    _prompt(cycle.pledge, cycle)
    return True


def _miss(pledge: Pledge, cycle: PledgeCycle, now: datetime, report: RunReport) -> None:
    if _claim(cycle, {}, {"status": PledgeCycle.Status.MISSED, "closed_at": now}):
        report.missed += 1
        misses = pledge.consecutive_misses + 1
        lapsed = misses >= LAPSE_AFTER_MISSES
        Pledge.objects.filter(pk=pledge.pk).update(
            consecutive_misses=misses, **({"status": Pledge.Status.LAPSED} if lapsed else {})
        )
        if lapsed:
            report.lapsed += 1
            text = _("Your %(money)s monthly pledge %(ref)s has stopped after three unpaid months. Thank you!") % {
                "money": pledge_money(pledge), "ref": pledge.reference}  # fmt: skip
            pledge_tell(pledge, key="lapsed", sms=text, subject=_("Your monthly pledge has stopped"), body=text)
    _advance(pledge, cycle)


def _advance(pledge: Pledge, cycle: PledgeCycle) -> None:
    """Move the pledge to its next month (only from this month: a concurrent run's advance is not repeated)."""
    Pledge.objects.filter(pk=pledge.pk, next_due_on=cycle.due_on).update(
        next_due_on=due_date_after(pledge.day_of_month, cycle.due_on)
    )
