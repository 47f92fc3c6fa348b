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


def donation_receipt_text(donation: Donation) -> str:
    """The donor's Telegram receipt for a completed donation."""
    payment = donation.payments.filter(status="succeeded").order_by("-pk").first()
    channel = CHANNEL_NAMES.get(payment.channel, payment.provider.title()) if payment else ""
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


@task()
def donation_notify(donation_id: int) -> str:
    """Receipts on completion: email, and Telegram when the donor linked a chat id; every outcome to ADMIN_CHAT_ID."""
    donation = Donation.objects.select_related("donor", "patient").get(pk=donation_id)
    if settings.ADMIN_CHAT_ID:
        telegram_send(settings.ADMIN_CHAT_ID, donation_admin_text(donation))
    if donation.status == Donation.Status.COMPLETED and donation.donor and donation.donor.telegram_chat_id:
        telegram_send(donation.donor.telegram_chat_id, donation_receipt_text(donation))
    email = donation.donor.email if donation.donor else ""
    if donation.status != Donation.Status.COMPLETED or not email:
        return "skipped"
    try:
        _send_receipt(donation, email)
    except OSError:  # SMTP down: the donation is still complete; the status page shows the receipt
        logger.warning("Receipt email for donation %s could not be sent", donation.reference)
        return "failed"
    logger.info("Receipt emailed for donation %s", donation.reference)
    return "sent"


def _send_receipt(donation: Donation, email: str) -> None:
    payment = donation.payments.filter(status="succeeded").first()
    send_mail(
        subject=f"Thank you: your donation {donation.reference} is confirmed",
        message=render_to_string(
            "emails/receipt.txt",
            {
                "donation": donation,
                "target": donation.patient.first_name if donation.patient else "the general fund",
                "receipt": payment.receipt if payment else "",
                "status_url": f"{settings.SITE_URL}/donations/{donation.reference}/",
            },
        ),
        from_email=None,
        recipient_list=[email],
    )
