"""Receipts and notices of a donation's outcome: email and Telegram to the donor, Telegram to the operators.

`donation_notify` is the task the payment state machine enqueues (on commit, only on a real transition).
"""

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.tasks import task
from django.template.loader import render_to_string
from django.utils import timezone

from donor.models import Donation
from donor.phone_numbers import mask_msisdn
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


def donation_receipt_text(donation: Donation, rail: str = "") -> str:
    """The donor's Telegram receipt for a completed donation; `rail` names how it was paid ("MTN MoMo")."""
    payment = donation.payments.filter(status="succeeded").order_by("-pk").first()
    channel = rail or (CHANNEL_NAMES.get(payment.channel, payment.provider.title()) if payment else "")
    when = timezone.localtime(donation.completed_at or donation.updated_at).strftime("%Y-%m-%d %H:%M:%S")
    target = donation.patient.first_name if donation.patient else "the general fund"
    lines = [
        "🎉 Payment Receipt",
        "",
        "Thank you for your payment!",
        "",
        f"💰 Amount: {donation.currency} {donation.amount:,.2f}",
        f"🧾 {channel + ' ' if channel else ''}Receipt: {payment.receipt if payment and payment.receipt else '-'}",
        f"📅 Date: {when}",
        f"❤️ For: {target}",
        "",
        f"Transaction ID: {(payment.provider_reference if payment else '') or donation.reference}",
        f"Reference: {donation.reference}",
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
    target = donation.patient.first_name if donation.patient else "the general fund"
    return "\n".join(
        [
            "↩️ Refund",
            "",
            f"{donation.status_reason or 'Your donation was refunded'} to you.",
            f"Donation: {donation.currency} {donation.amount:,.2f} for {target}",
            f"Reference: {donation.reference}",
        ]
    )


@task()
def donation_notify(donation_id: int, rail: str = "", refund: bool = False) -> str:
    """Receipts on completion (email, and Telegram when the donor linked a chat id), a notice when a refund
    went back, every outcome to ADMIN_CHAT_ID. `rail` names how it was paid ("MTN MoMo", "M-Pesa (Vodacom)")."""
    donation = Donation.objects.select_related("donor", "patient").get(pk=donation_id)
    if settings.ADMIN_CHAT_ID:
        telegram_send(settings.ADMIN_CHAT_ID, donation_admin_text(donation))
    chat = donation.donor.telegram_chat_id if donation.donor else ""
    email = donation.donor.email if donation.donor else ""
    if refund:
        if chat:
            telegram_send(chat, donation_refund_text(donation))
        if email:
            _send_mail(donation, email, "emails/refund.txt", f"Your donation {donation.reference} was refunded", rail)
        return "refund notice"
    if donation.status == Donation.Status.COMPLETED and chat:
        telegram_send(chat, donation_receipt_text(donation, rail))
    if donation.status != Donation.Status.COMPLETED or not email:
        return "skipped"
    try:
        subject = f"Thank you: your donation {donation.reference} is confirmed"
        _send_mail(donation, email, "emails/receipt.txt", subject, rail)
    except OSError:  # SMTP down: the donation is still complete; the status page shows the receipt
        logger.warning("Receipt email for donation %s could not be sent", donation.reference)
        return "failed"
    logger.info("Receipt emailed for donation %s", donation.reference)
    return "sent"


def _send_mail(donation: Donation, email: str, template: str, subject: str, rail: str) -> None:
    payment = donation.payments.filter(status="succeeded").first()
    send_mail(
        subject=subject,
        message=render_to_string(
            template,
            {
                "donation": donation,
                "target": donation.patient.first_name if donation.patient else "the general fund",
                "receipt": payment.receipt if payment else "",
                "rail": rail,
                "status_url": f"{settings.SITE_URL}/donations/{donation.reference}/",
            },
        ),
        from_email=None,
        recipient_list=[email],
    )


def donation_notify_queue(donation_id: int, rail: str = "", *, refund: bool = False) -> None:
    """Queue the notices, after the money is committed. A task queue that is down costs this notice (logged),
    never the record of the payment: the exception must not reach the callback handling that committed it."""
    try:
        donation_notify.enqueue(donation_id, rail, refund)
    except Exception:
        logger.exception("Donation %s: notice not queued (task queue unavailable); none will be sent", donation_id)


REGISTRATION_NOTICES = {
    "created": ("Your donor account is ready", "emails/registration_created.txt"),
    "email_taken": ("You already have a donor account", "emails/registration_email_taken.txt"),
    "username_taken": ("Choose another username", "emails/registration_username_taken.txt"),
}


@task()
def registration_notice(email: str, username: str, outcome: str) -> str:
    """The email that tells a registering donor what the web page cannot (donor.services.donor_signup)."""
    subject, template = REGISTRATION_NOTICES[outcome]
    context = {
        "username": username,
        "login_url": f"{settings.SITE_URL}/login/",
        "signup_url": f"{settings.SITE_URL}/signup/",
    }
    send_mail(subject=subject, message=render_to_string(template, context), from_email=None, recipient_list=[email])
    return "sent"


def registration_notice_queue(*, email: str, username: str, outcome: str) -> None:
    """Queue it; a queue or mail server that is down costs the notice (logged), never the answer."""
    try:
        registration_notice.enqueue(email, username, outcome)
    except Exception:
        logger.exception("Registration notice not queued or sent (%s)", outcome)
