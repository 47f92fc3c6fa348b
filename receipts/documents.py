"""The receipt and statement PDFs: HTML from a template in the donor's language, then WeasyPrint.

A document is kept by the SHA-256 of its HTML (`ReceiptDocument`), so what is rendered once is served from the
database after, and anything that changes what the page shows (a refund, a copy mark, the template) is a new
document. The fonts are DejaVu (Debian's fonts-dejavu-core, installed by `make install`), embedded and subset by
WeasyPrint, so every letter of the Swahili text is in the file whatever the reader's machine has.
"""

import hashlib
import logging
import threading

from django.conf import settings
from django.db import IntegrityError, transaction
from django.tasks import task
from django.template.loader import render_to_string
from django.utils import timezone, translation

from donor.models import Donation
from donor.notifications import CHANNEL_NAMES
from donor.sms import money_for_people
from receipts.models import Receipt, ReceiptDocument

logger = logging.getLogger("receipts")
DATE = "%Y-%m-%d"
# WeasyPrint drives Pango and HarfBuzz, which promise nothing about threads: one render at a time per process.
RENDER_LOCK = threading.Lock()


def document_pdf(*, template: str, context: dict, language: str) -> tuple[str, bytes]:
    """(content hash, PDF) of `template` rendered in `language`, rendered only when no stored one has that hash."""
    with translation.override(language):
        html = render_to_string(template, {**context, "organisation": _organisation(), "language": language})
    content_hash = hashlib.sha256(html.encode()).hexdigest()
    stored = ReceiptDocument.objects.filter(content_hash=content_hash).values_list("pdf", flat=True).first()
    if stored is not None:
        return content_hash, bytes(stored)
    from weasyprint import HTML  # imported when first needed: it loads Pango, which a web worker may never use

    with RENDER_LOCK:
        pdf = HTML(string=html, base_url=str(settings.BASE_DIR)).write_pdf()
    try:
        with transaction.atomic():
            ReceiptDocument.objects.create(content_hash=content_hash, pdf=pdf)
    except IntegrityError:  # rendered at the same time elsewhere: the same bytes for the same content
        pass
    return content_hash, pdf


def _organisation() -> dict[str, str]:
    return {
        "name": settings.ORGANISATION_NAME,
        "registration_number": settings.ORGANISATION_REGISTRATION_NUMBER,
    }


def receipt_context(*, receipt: Receipt, copy: bool) -> dict:
    donation = Donation.objects.select_related("donor", "patient").get(pk=receipt.donation_id)
    payment = donation.payments.filter(status="succeeded").order_by("-pk").first()
    donor = donation.donor
    first = donation.receipts.order_by("version").first()
    return {
        "receipt": receipt,
        "copy": copy,
        "first_issued": timezone.localtime(first.issued_at if first else receipt.issued_at).strftime(DATE),
        "donation": donation,
        "donor_name": (donor.name or donor.email) if donor else "",
        "date": timezone.localtime(donation.completed_at or donation.updated_at).strftime(DATE),
        "received": money_for_people(receipt.amount + receipt.refunded, receipt.currency),
        "refunded": money_for_people(receipt.refunded, receipt.currency) if receipt.refunded else "",
        "kept": money_for_people(receipt.amount, receipt.currency),
        "rail": (CHANNEL_NAMES.get(payment.channel, payment.provider.title()) if payment else ""),
        "provider_receipt": (payment.receipt or payment.provider_reference or "") if payment else "",
    }


def receipt_pdf(*, receipt: Receipt, copy: bool = False) -> bytes:
    """The receipt's PDF (`copy`: marked as a duplicate of the one first handed out)."""
    context = receipt_context(receipt=receipt, copy=copy)
    content_hash, pdf = document_pdf(template="receipts/receipt.html", context=context, language=receipt.language)
    if not copy and receipt.content_hash != content_hash:
        Receipt.objects.filter(pk=receipt.pk).update(content_hash=content_hash)
        receipt.content_hash = content_hash
    return pdf


@task()
def receipt_render(receipt_id: int) -> str:
    """Render a receipt's original ahead of its first reader. Returns its hash. No longer queued: both readers (the
    email relay, a download) render right after issuing, so a task rendering ahead did the work twice (7 ms and a
    task per receipt); kept so that tasks queued before this release still run."""
    receipt = Receipt.objects.get(pk=receipt_id)
    receipt_pdf(receipt=receipt)
    return receipt.content_hash
