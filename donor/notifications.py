"""Telegram receipts: the Bot API's sendMessage, through the provider sandbox's Telegram in development."""

import logging

import requests
from django.conf import settings
from django.utils import timezone

from donor.models import Donation
from donor.phone_numbers import mask_msisdn

logger = logging.getLogger("payments.notifications")
TELEGRAM_TIMEOUT_SECONDS = 10
CHANNEL_NAMES = {
    "Mpesa": "M-Pesa",
    "Airtel": "Airtel Money",
    "Tigo": "Tigo Pesa",
    "Halopesa": "Halopesa",
    "Azampesa": "AzamPesa",
    "card": "Card",
}


def telegram_send(chat_id: str | int, text: str) -> bool:
    """Send one message. Never raises: a receipt that cannot be sent must not undo a payment."""
    token = getattr(settings, "TELEGRAM_BOT_TOKEN", "")
    api_url = getattr(settings, "TELEGRAM_API_URL", "https://api.telegram.org").rstrip("/")
    if not token or not chat_id:
        logger.info("Telegram message not sent: %s", "no bot token" if not token else "no chat id")
        return False
    try:
        response = requests.post(
            f"{api_url}/bot{token}/sendMessage",
            json={"chat_id": chat_id, "text": text},
            timeout=TELEGRAM_TIMEOUT_SECONDS,
        )
        body = response.json() if response.content else {}
    except Exception as exc:  # noqa: BLE001 - a receipt must never break the caller
        logger.warning("Telegram message to chat %s failed: %s", chat_id, type(exc).__name__)
        return False
    if response.status_code != 200 or not body.get("ok"):
        logger.warning(
            "Telegram refused a message to chat %s: HTTP %s %s",
            chat_id,
            response.status_code,
            body.get("description", ""),
        )
        return False
    return True


def donation_receipt_text(donation: Donation) -> str:
    """Seed 004's "User Receipt" format, for a completed donation."""
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
    """Seed 004's admin notification (success or failure), phone masked as in the logs."""
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
