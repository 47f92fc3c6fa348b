"""Background work through Django's tasks framework. Tasks take ids and are idempotent."""

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.tasks import task
from django.template.loader import render_to_string

logger = logging.getLogger("payments.tasks")


@task()
def verify_callback(event_id: int) -> str:
    from payments.services.callbacks import callback_verify

    return callback_verify(event_id=event_id).code


@task()
def payment_confirm_task(payment_id: int) -> str:
    from payments.services.payments import payment_confirm

    _, outcome = payment_confirm(payment_id=payment_id)
    return outcome.status


@task()
def reconcile_payments_task() -> int:
    """The scheduled reconciliation: due payments on the ladder, then the inbox sweeper."""
    from payments.services.reconcile import payments_reconcile

    report = payments_reconcile()
    return report.checked + report.replayed


@task()
def notify_donation_status(donation_id: int) -> str:
    """Receipts on completion: email, and Telegram when the donor linked a chat id; every outcome to ADMIN_CHAT_ID."""
    from donor.models import Donation
    from donor.notifications import donation_admin_text, donation_receipt_text, telegram_send

    donation = Donation.objects.select_related("donor", "patient").get(pk=donation_id)
    if settings.ADMIN_CHAT_ID:
        telegram_send(settings.ADMIN_CHAT_ID, donation_admin_text(donation))
    if donation.status == Donation.Status.COMPLETED and donation.donor and donation.donor.telegram_chat_id:
        telegram_send(donation.donor.telegram_chat_id, donation_receipt_text(donation))
    email = donation.donor.email if donation.donor else ""
    if donation.status != Donation.Status.COMPLETED or not email:
        return "skipped"
    payment = donation.payments.filter(status="succeeded").first()
    target = donation.patient.first_name if donation.patient else "the general fund"
    try:
        _send_receipt(donation, email, payment, target)
    except OSError:  # SMTP down: the donation is still complete; the status page shows the receipt
        logger.warning("Receipt email for donation %s could not be sent", donation.reference)
        return "failed"
    logger.info("Receipt emailed for donation %s", donation.reference)
    return "sent"


def _send_receipt(donation, email: str, payment, target: str) -> None:
    send_mail(
        subject=f"Thank you: your donation {donation.reference} is confirmed",
        message=render_to_string(
            "emails/receipt.txt",
            {
                "donation": donation,
                "target": target,
                "receipt": payment.receipt if payment else "",
                "status_url": f"{settings.SITE_URL}/donations/{donation.reference}/",
            },
        ),
        from_email=None,
        recipient_list=[email],
    )
