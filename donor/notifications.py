"""Receipts and notices of a donation's outcome: email and Telegram to the donor, Telegram to the operators.

They go through an outbox (`Notice`): `notices_record` writes one row per message in the same transaction as the
credit or refund it tells of (only on a real transition), and the relay `notices_send` sends what is due, each row
once, retried with backoff and parked `dead` after NOTICE_MAX_ATTEMPTS (the watchdog alerts). The task
`donation_notify`, queued on commit, runs the relay for one donation at once; the scheduler
(`reconcile_payments`) runs it for everything due, so a task queue or SMTP server that is down delays a receipt
and never loses it.
"""

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMessage, send_mail
from django.db import transaction
from django.tasks import task
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from donor.models import Donation, Donor, Notice
from donor.money import money_for_people
from donor.phone_numbers import mask_msisdn
from donor.sms import donation_sms_text, sms_opted_out, sms_send
from integrations.sms import sms_enabled
from integrations.telegram import telegram_send

logger = logging.getLogger("payments.notifications")
CHANNEL_NAMES = {
    "Mpesa": "M-Pesa",
    "Airtel": "Airtel Money",
    "Tigo": "Tigo Pesa",
    "Halopesa": "Halopesa",
    "Azampesa": "AzamPesa",
    "card": "Card",
}


def donor_language_of(donation: Donation) -> str:
    """The language the donor's messages are written in (Donor.language: the page they gave from)."""
    return (donation.donor.language if donation.donor else "") or settings.LANGUAGE_CODE


def donation_receipt_text(donation: Donation, rail: str = "") -> str:
    """The donor's Telegram receipt for a completed donation; `rail` names how it was paid ("MTN MoMo")."""
    payment = donation.payments.filter(status="succeeded").order_by("-pk").first()
    channel = rail or (CHANNEL_NAMES.get(payment.channel, payment.provider.title()) if payment else "")
    when = timezone.localtime(donation.completed_at or donation.updated_at).strftime("%Y-%m-%d %H:%M:%S")
    target = donation.patient.first_name if donation.patient else _("the general fund")
    receipt = payment.receipt if payment and payment.receipt else "-"
    lines = [
        "🎉 " + _("Payment Receipt"),
        "",
        _("Thank you for your payment!"),
        "",
        "💰 " + _("Amount: %(money)s") % {"money": f"{donation.currency} {donation.amount:,.2f}"},  # the agreed form
        "🧾 " + (f"{channel} " if channel else "") + _("Receipt: %(receipt)s") % {"receipt": receipt},
        "📅 " + _("Date: %(when)s") % {"when": when},
        "❤️ " + _("For: %(target)s") % {"target": target},
        "",
        _("Transaction ID: %(id)s") % {"id": (payment.provider_reference if payment else "") or donation.reference},
        _("Reference: %(reference)s") % {"reference": donation.reference},
    ]
    return "\n".join(lines)


def donation_admin_text(donation: Donation) -> str:
    """The operators' Telegram notice of an outcome (success or failure), phone masked as in the logs."""
    payment = donation.payments.order_by("-pk").first()
    phone = mask_msisdn(payment.msisdn) if payment and payment.msisdn else "-"
    when = timezone.localtime(donation.completed_at or donation.updated_at).strftime("%Y-%m-%d %H:%M:%S")
    request_id = (payment.provider_reference if payment else "") or donation.reference
    target = donation.patient.code if donation.patient else "general fund"
    if donation.status == Donation.Status.COMPLETED:
        lines = [
            "✅ Payment Successful",
            "",
            f"💰 Amount: {donation.currency} {donation.amount:,.2f}",
            f"📱 Phone: {phone}",
            f"🧾 Receipt: {payment.receipt if payment and payment.receipt else '-'}",
            f"🆔 Request ID: {request_id}",
            f"🏥 For: {target}",
            f"📅 Date: {when}",
        ]
    else:
        lines = [
            f"❌ Payment {donation.get_status_display()}",
            "",
            f"💰 Amount: {donation.currency} {donation.amount:,.2f}",
            f"📱 Phone: {phone}",
            f"🆔 Request ID: {request_id}",
            f"❗ Reason: {donation.status_reason or donation.get_status_display()}",
            f"📅 Date: {when}",
        ]
    return "\n".join(lines)


def donation_refund_text(donation: Donation) -> str:
    """The donor's notice that (part of) their gift went back to them."""
    target = donation.patient.first_name if donation.patient else _("the general fund")
    money = money_for_people(donation.amount, donation.currency)
    return "\n".join(
        [
            "↩️ " + _("Refund"),
            "",
            donation.status_reason or _("Your donation was refunded to you."),  # staff's words, as they wrote them
            _("Donation: %(money)s for %(target)s") % {"money": money, "target": target},
            _("Reference: %(reference)s") % {"reference": donation.reference},
        ]
    )


CLAIM_FOR = timedelta(minutes=5)  # a relay that dies mid-send leaves its rows due again after this
MAX_DELAY = timedelta(hours=6)


def notices_record(*, donation_id: int, rail: str = "", refund: bool = False) -> int:
    """Write the messages a real transition calls for, inside the caller's transaction (so they commit with the
    money or not at all). Once per donation, kind and channel: a replay records nothing new. Returns how many."""
    donation = Donation.objects.select_related("donor").get(pk=donation_id)
    paid = None
    if not refund and donation.status == Donation.Status.COMPLETED and sms_enabled():
        # The phone that paid gets the SMS receipt (it is known only when the rail prompted a phone).
        paid = donation.payments.filter(status="succeeded").exclude(msisdn="").order_by("-pk").first()
    rows = _notice_rows(donation, donation.donor, rail, paid.msisdn if paid else "", refund=refund)
    Notice.objects.bulk_create(rows, ignore_conflicts=True)  # the unique key: once, however often replayed
    return len(rows)


def notices_record_credits(*, credits: Sequence[tuple[Donation, str, str]]) -> int:
    """notices_record for many completed donations at once, in one INSERT (the batch worker's credits):
    (donation, rail, the phone that paid or "")."""
    donors = Donor.objects.in_bulk({donation.donor_id for donation, _, _ in credits if donation.donor_id})
    sms = sms_enabled()
    rows = [
        row
        for donation, rail, msisdn in credits
        for row in _notice_rows(donation, donors.get(donation.donor_id), rail, msisdn if sms else "")
    ]
    Notice.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def _notice_rows(
    donation: Donation, donor: Donor | None, rail: str, paid_msisdn: str, *, refund: bool = False
) -> list[Notice]:
    telegram = bool(settings.TELEGRAM_BOT_TOKEN)
    wanted: list[tuple[str, str, str]] = []  # (kind, channel, recipient)
    if telegram and settings.ADMIN_CHAT_ID:
        wanted.append(("refund-outcome" if refund else f"outcome-{donation.status}", Notice.Channel.OPERATORS,
                       str(settings.ADMIN_CHAT_ID)))  # fmt: skip
    kind = "refund" if refund else "receipt"
    if refund or donation.status == Donation.Status.COMPLETED:
        if telegram and donor and donor.telegram_chat_id:
            wanted.append((kind, Notice.Channel.TELEGRAM, donor.telegram_chat_id))
        if donor and donor.email:
            wanted.append((kind, Notice.Channel.EMAIL, donor.email))
    if paid_msisdn and not sms_opted_out(paid_msisdn):
        wanted.append((kind, Notice.Channel.SMS, mask_msisdn(paid_msisdn)))  # the row shows it masked
    now = timezone.now()
    return [
        Notice(key=f"{kind}:{channel}:{donation.pk}", donation=donation, kind=kind, channel=channel,
               recipient=recipient, rail=rail[:60], next_attempt_at=now)
        for kind, channel, recipient in wanted
    ]  # fmt: skip


def notices_send(*, donation_id: int | None = None, update_id: int | None = None, limit: int = 100) -> dict[str, int]:
    """The relay: send the due messages (of one donation, of one treatment update, or all), each claimed under
    SKIP LOCKED so two relays never send the same one at once. A failure is retried with backoff (1 min,
    doubling, at most 6 h)."""
    now = timezone.now()
    with transaction.atomic():
        due = Notice.objects.select_for_update(skip_locked=True).filter(
            status=Notice.Status.PENDING, next_attempt_at__lte=now
        )
        if donation_id is not None:
            due = due.filter(donation_id=donation_id)
        if update_id is not None:
            due = due.filter(treatment_update_id=update_id)
        claimed = list(due.order_by("next_attempt_at", "pk")[:limit])
        Notice.objects.filter(pk__in=[n.pk for n in claimed]).update(next_attempt_at=now + CLAIM_FOR)
    counts = {"sent": 0, "failed": 0, "dead": 0}
    for notice in claimed:
        error = _deliver(notice)
        if not error:
            Notice.objects.filter(pk=notice.pk).update(status=Notice.Status.SENT, sent_at=timezone.now(),
                                                       attempts=notice.attempts + 1, last_error="")  # fmt: skip
            counts["sent"] += 1
            continue
        attempts = notice.attempts + 1
        dead = attempts >= settings.NOTICE_MAX_ATTEMPTS
        delay = min(timedelta(minutes=2 ** (attempts - 1)), MAX_DELAY)
        Notice.objects.filter(pk=notice.pk).update(
            attempts=attempts, last_error=error[:255], next_attempt_at=timezone.now() + delay,
            status=Notice.Status.DEAD if dead else Notice.Status.PENDING,
        )  # fmt: skip
        counts["dead" if dead else "failed"] += 1
        log = logger.error if dead else logger.warning
        log("Notice %s (%s by %s) for donation %s not sent (attempt %s): %s", notice.pk, notice.kind,
            notice.channel, notice.donation_id, attempts, error)  # fmt: skip
    return counts


def _deliver(notice: Notice) -> str:
    """Send one message; "" when it went, else why not."""
    if notice.kind == "update":
        from donor.updates import update_deliver  # it queues this relay: imported here, not at the top

        return update_deliver(notice)
    donation = Donation.objects.select_related("donor", "patient").get(pk=notice.donation_id)
    if notice.channel == Notice.Channel.OPERATORS:  # the operators read English, as the admin does
        return "" if telegram_send(notice.recipient, donation_admin_text(donation)) else "Telegram did not take it"
    with translation.override(donor_language_of(donation)):
        return _deliver_to_donor(notice, donation)


def _deliver_to_donor(notice: Notice, donation: Donation) -> str:
    """A receipt or refund notice in the donor's own language (the caller made it the active one)."""
    if notice.channel == Notice.Channel.TELEGRAM:
        text = (
            donation_refund_text(donation) if notice.kind == "refund" else donation_receipt_text(donation, notice.rail)
        )
        return "" if telegram_send(notice.recipient, text) else "Telegram did not take it"
    if notice.channel == Notice.Channel.SMS:
        paid = donation.payments.filter(status="succeeded").exclude(msisdn="").order_by("-pk").first()
        return sms_send(key=notice.key, msisdn=paid.msisdn, text=donation_sms(donation)) if paid else ""
    if notice.kind == "refund":
        subject = _("Your donation %(reference)s was refunded") % {"reference": donation.reference}
        template = "emails/refund.txt"
    else:
        subject = _("Thank you: your donation %(reference)s is confirmed") % {"reference": donation.reference}
        template = "emails/receipt.txt"
    try:
        attachments = notice_attachments(notice)
    except Exception as exc:  # a receipt that cannot be rendered now: the email waits for it (retried, then dead)
        logger.exception("Notice %s: attachment not ready", notice.pk)
        return f"attachment: {type(exc).__name__}: {exc}"
    try:
        _send_mail(donation, notice, template, subject, attachments)
    except OSError as exc:  # SMTP down or refusing: the donation is recorded; the relay tries again
        return f"email: {type(exc).__name__}: {exc}"
    logger.info("%s emailed for donation %s", notice.kind.title(), donation.reference)
    return ""


def donation_sms(donation: Donation) -> str:
    payment = donation.payments.filter(status="succeeded").order_by("-pk").first()
    return donation_sms_text(
        amount=donation.amount,
        currency=donation.currency,
        patient_code=donation.patient.code if donation.patient else "",
        receipt=payment.receipt if payment else "",
        link=f"{settings.SITE_URL}/donations/{donation.public_token}/",
    )


@task()
def donation_notify(donation_id: int, rail: str = "", refund: bool = False) -> str:
    """Send a donation's due messages now (queued on commit of the change they tell of). `rail` and `refund` are
    what was recorded; a message recorded before the outbox existed is recorded here first."""
    if not Notice.objects.filter(donation_id=donation_id).exists():
        notices_record(donation_id=donation_id, rail=rail, refund=refund)
    counts = notices_send(donation_id=donation_id)
    return "sent" if counts["sent"] and not counts["failed"] else "failed" if counts["failed"] else "skipped"


Attachment = tuple[str, bytes, str]  # (file name, content, MIME type)
# What an email carries, from the apps above donor (which donor never imports): each adds its `f(*, notice)` in its
# AppConfig.ready() — receipts adds the PDF receipt (receipts/apps.py).
ATTACHMENT_SOURCES: list[Callable[..., list[Attachment]]] = []


def notice_attachments(notice: Notice) -> list[Attachment]:
    """The files this notice's email carries."""
    return [item for source in ATTACHMENT_SOURCES for item in source(notice=notice)]


def _send_mail(donation: Donation, notice: Notice, template: str, subject: str, attachments: list[Attachment]) -> None:
    payment = donation.payments.filter(status="succeeded").first()
    body = render_to_string(
        template,
        {
            "donation": donation,
            "money": money_for_people(donation.amount, donation.currency),
            "target": donation.patient.first_name if donation.patient else _("the general fund"),
            "receipt": payment.receipt if payment else "",
            "rail": _(notice.rail) if notice.rail.startswith(("Card", "Bank")) else notice.rail,  # brands stay
            "status_url": f"{settings.SITE_URL}/donations/{donation.public_token}/",
            "attached": [name for name, _, _ in attachments],
        },
    )
    # One Message-ID per outbox row: a resend after a relay died mid-send is the same message to mail clients.
    domain = settings.SITE_URL.split("//")[-1].split("/")[0].split(":")[0] or "localhost"
    headers = {"Message-ID": f"<notice-{notice.pk}.{donation.reference}@{domain}>"}
    EmailMessage(subject=subject, body=body, to=[notice.recipient], headers=headers, attachments=attachments).send()


def donation_notify_queue(donation_id: int, rail: str = "", *, refund: bool = False) -> None:
    """Queue the relay for one donation, after the money is committed. A task queue that is down only delays the
    messages (the outbox rows are committed; the scheduler's relay sends them): it must not reach the callback
    handling that committed the money."""
    try:
        donation_notify.enqueue(donation_id, rail, refund)
    except Exception:
        logger.exception("Donation %s: relay not queued (task queue unavailable); the scheduler will send", donation_id)


REGISTRATION_NOTICES = {
    "created": (gettext_lazy("Your donor account is ready"), "emails/registration_created.txt"),
    "email_taken": (gettext_lazy("You already have a donor account"), "emails/registration_email_taken.txt"),
    "username_taken": (gettext_lazy("Choose another username"), "emails/registration_username_taken.txt"),
}


@task()
def registration_notice(email: str, username: str, outcome: str, language: str = "") -> str:
    """The email that tells a registering donor what the web page cannot (donor.services.donor_signup), in the
    language of the page they registered from."""
    subject, template = REGISTRATION_NOTICES[outcome]
    context = {
        "username": username,
        "login_url": f"{settings.SITE_URL}/login/",
        "signup_url": f"{settings.SITE_URL}/signup/",
    }
    with translation.override(language or settings.LANGUAGE_CODE):
        body = render_to_string(template, context)
        send_mail(subject=str(subject), message=body, from_email=None, recipient_list=[email])
    return "sent"


def registration_notice_queue(*, email: str, username: str, outcome: str, language: str = "") -> None:
    """Queue it; a queue or mail server that is down costs the notice (logged), never the answer."""
    try:
        registration_notice.enqueue(email, username, outcome, language)
    except Exception:
        logger.exception("Registration notice not queued or sent (%s)", outcome)
