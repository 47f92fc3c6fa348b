"""Telling the donors who funded a patient about a treatment update: one message per person and channel, through
the notification outbox (`Notice`, sent by `notices_send` with its retries), in the donor's language.

Who: every address (email; a linked Telegram chat; an SMS number that opted in) of a donor with a completed
donation to the patient that still has money on the patient after refunds. A guest who gave three times is three
Donor rows with one email: the key `update:<update>:<channel>:<address digest>` makes it one message, and
recording the fan-out again (a replay, a second approval attempt) records nothing new.

Stopping: every message carries a signed link (`/unsubscribe/<token>/`, no login) for its channel; emails also
carry `List-Unsubscribe` and `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058), so a mail client's
button unsubscribes with one POST. The token signs the outbox row's id, so no address is in the URL.
"""

import hashlib
import logging

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Q, Sum
from django.tasks import task
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from donor.models import Donation, Notice, NoticeSubscription
from donor.phone_numbers import mask_msisdn
from donor.sms import sms_opted_out, sms_send
from integrations.sms import fit_sms, sms_enabled
from integrations.telegram import telegram_send
from patients.models import TreatmentUpdate

logger = logging.getLogger("payments.notifications")
UNSUBSCRIBE_SALT = "donor.updates.unsubscribe"
KIND_HEADINGS: dict[str, Promise] = {
    TreatmentUpdate.Kind.PRELIMINARY: gettext_lazy("Treatment has started"),
    TreatmentUpdate.Kind.DELAY: gettext_lazy("A delay in treatment"),
    TreatmentUpdate.Kind.FINAL: gettext_lazy("Treatment is complete"),
}
# Channels an address gets updates on without asking (they gave it to hear from us); SMS needs an opt-in.
DEFAULT_SUBSCRIBED: dict[str, bool] = {
    Notice.Channel.EMAIL: True,
    Notice.Channel.TELEGRAM: True,
    Notice.Channel.SMS: False,
}


def _digest(address: str) -> str:
    return hashlib.sha256(address.encode()).hexdigest()[:24]


def update_recipients(*, update: TreatmentUpdate) -> list[tuple[str, str, Donation]]:
    """(channel, address, the donor's latest qualifying donation) once per channel and address, newest gift first."""
    donations = (
        Donation.objects.filter(patient_id=update.patient_id, status=Donation.Status.COMPLETED, donor__isnull=False)
        .annotate(net=Sum("allocations__amount", filter=Q(allocations__patient_id=update.patient_id)))
        .filter(net__gt=0)
        .select_related("donor")
        .order_by("-completed_at", "-pk")
    )
    telegram, sms = bool(settings.TELEGRAM_BOT_TOKEN), sms_enabled()
    seen: dict[tuple[str, str], Donation] = {}
    donation: Donation
    for donation in donations:
        donor = donation.donor
        assert donor is not None
        candidates: list[tuple[str, str]] = [(Notice.Channel.EMAIL, donor.email.strip().lower())]
        if telegram:
            candidates.append((Notice.Channel.TELEGRAM, donor.telegram_chat_id.strip()))
        if sms:
            candidates.append((Notice.Channel.SMS, donor.phone.strip()))
        for channel, address in candidates:
            if address and (channel, address) not in seen:
                seen[(channel, address)] = donation
    choices = {
        (row.channel, row.address): row.subscribed
        for row in NoticeSubscription.objects.filter(address__in={address for _c, address in seen})
    }
    wanted: list[tuple[str, str, Donation]] = []
    for (channel, address), donation in seen.items():
        if not choices.get((channel, address), DEFAULT_SUBSCRIBED[channel]):
            continue
        if channel == Notice.Channel.SMS and sms_opted_out(address):
            continue
        wanted.append((channel, address, donation))
    return wanted


def update_notices_record(*, update: TreatmentUpdate) -> int:
    """Record the update's messages in the outbox (inside the caller's transaction); once per update, channel and
    address however often it runs. Returns how many rows were new."""
    if update.status != TreatmentUpdate.Status.APPROVED:
        return 0  # only an approved update reaches donors
    now = timezone.now()
    rows = [
        Notice(
            key=f"update:{update.pk}:{channel}:{_digest(address)}",
            donation=donation,
            treatment_update=update,
            kind="update",
            channel=channel,
            recipient=mask_msisdn(address) if channel == Notice.Channel.SMS else address,
            next_attempt_at=now,
        )
        for channel, address, donation in update_recipients(update=update)
    ]
    before = Notice.objects.filter(treatment_update=update).count()
    Notice.objects.bulk_create(rows, ignore_conflicts=True)  # the unique key: once per update × address × channel
    return Notice.objects.filter(treatment_update=update).count() - before


def update_approved_receiver(sender: object, *, update: TreatmentUpdate, **kwargs: object) -> None:
    """Receiver of `patients.signals.update_approved` (connected in donor.apps): inside the approval's
    transaction, so the messages commit with it; the relay is queued once it has committed."""
    update_notices_record(update=update)
    transaction.on_commit(lambda: update_notify_queue(update.pk))


@task()
def update_notify(update_id: int) -> str:
    """Send an update's due messages now (queued on the approval's commit; the scheduler's relay retries)."""
    from donor.notifications import notices_send  # the relay imports this module to deliver

    counts = notices_send(update_id=update_id, limit=1000)
    return "sent" if counts["sent"] and not counts["failed"] else "failed" if counts["failed"] else "skipped"


def update_notify_queue(update_id: int) -> None:
    try:
        update_notify.enqueue(update_id)
    except Exception:
        logger.exception("Update %s: relay not queued (task queue unavailable); the scheduler will send", update_id)


# --- Unsubscribing ------------------------------------------------------------------------------------------


def unsubscribe_token(notice: Notice) -> str:
    return signing.Signer(salt=UNSUBSCRIBE_SALT).sign(str(notice.pk))


def unsubscribe_url(notice: Notice) -> str:
    return f"{settings.SITE_URL}/unsubscribe/{unsubscribe_token(notice)}/"


def unsubscribe_notice(*, token: str) -> Notice | None:
    """The outbox row a signed link names, or None for a link that is not ours (tampered, cut short)."""
    try:
        notice_id = int(signing.Signer(salt=UNSUBSCRIBE_SALT).unsign(token))
    except (signing.BadSignature, ValueError):
        return None
    return Notice.objects.filter(pk=notice_id, kind="update").select_related("donation__donor").first()


def _address(notice: Notice) -> str:
    """The full address a row went to (an SMS row shows its number masked; the donor's record has it)."""
    if notice.channel == Notice.Channel.SMS:
        donor = notice.donation.donor
        return donor.phone.strip() if donor else ""
    return notice.recipient


def notice_unsubscribe(*, notice: Notice, source: str) -> NoticeSubscription:
    """No more updates to this address on this channel (idempotent)."""
    row, _created = NoticeSubscription.objects.update_or_create(
        channel=notice.channel, address=_address(notice), defaults={"subscribed": False, "source": source[:40]}
    )
    logger.info("Updates unsubscribed: %s by %s", notice.channel, source)
    return row


def notice_subscribe(*, channel: str, address: str, source: str) -> NoticeSubscription:
    """Updates to this address on this channel (an SMS opt-in, or undoing an unsubscribe)."""
    row, _created = NoticeSubscription.objects.update_or_create(
        channel=channel, address=address.strip().lower(), defaults={"subscribed": True, "source": source[:40]}
    )
    return row


# --- Delivery (called by the relay for kind "update") --------------------------------------------------------


def _language(donation: Donation) -> str:
    language = donation.donor.language if donation.donor else ""
    return language or settings.LANGUAGE_CODE


def update_deliver(notice: Notice) -> str:
    """Send one update message; "" when it went (or never will: the address unsubscribed since), else why not."""
    assert notice.treatment_update_id is not None  # kind "update" rows name their update
    update = TreatmentUpdate.objects.select_related("patient").get(pk=notice.treatment_update_id)
    donation = Donation.objects.select_related("donor").get(pk=notice.donation_id)
    choice = NoticeSubscription.objects.filter(channel=notice.channel, address=_address(notice)).first()
    if not (choice.subscribed if choice else DEFAULT_SUBSCRIBED[notice.channel]):
        return ""  # unsubscribed between the fan-out and now: nothing goes
    patient = update.patient
    page, stop = f"{settings.SITE_URL}/p/{patient.code}", unsubscribe_url(notice)
    context = {
        "patient_name": patient.first_name,
        "heading": KIND_HEADINGS.get(update.kind, ""),
        "text": update.text,
        "photo_url": update.photo_url,
        "patient_url": page,
        "unsubscribe_url": stop,
    }
    with translation.override(_language(donation)):
        if notice.channel == Notice.Channel.TELEGRAM:
            message = render_to_string("emails/treatment_update.txt", context)
            return "" if telegram_send(notice.recipient, message) else "Telegram did not take it"
        if notice.channel == Notice.Channel.SMS:
            sms = update_sms_text(patient_name=patient.first_name, text=update.text, patient_url=page, stop_url=stop)
            return sms_send(key=notice.key, msisdn=_address(notice), text=sms)
        subject = _("News of %(name)s, whose treatment you helped pay for") % {"name": patient.first_name}
        body = render_to_string("emails/treatment_update.txt", context)
    domain = settings.SITE_URL.split("//")[-1].split("/")[0].split(":")[0] or "localhost"
    headers = {
        "Message-ID": f"<notice-{notice.pk}.update-{update.pk}@{domain}>",
        "List-Unsubscribe": f"<{stop}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    try:
        EmailMessage(subject=subject, body=body, to=[notice.recipient], headers=headers).send()
    except OSError as exc:  # SMTP down or refusing: the relay tries again
        return f"email: {type(exc).__name__}: {exc}"
    return ""


def update_sms_text(*, patient_name: str, text: str, patient_url: str, stop_url: str) -> str:
    """One GSM-7 SMS: whose news, the start of it, the page, and how to stop."""
    full = _("News of %(name)s: %(text)s More: %(url)s Stop: %(stop)s") % {
        "name": patient_name, "text": text, "url": patient_url, "stop": stop_url}  # fmt: skip
    short = _("News of %(name)s: %(url)s Stop: %(stop)s") % {
        "name": patient_name, "url": patient_url, "stop": stop_url}  # fmt: skip
    return fit_sms(" ".join(full.split()), " ".join(short.split()))
