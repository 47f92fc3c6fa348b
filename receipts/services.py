"""Issuing receipts: a number once per completed donation, a new version when a refund changes what we kept.

`receipt_issue` is the only way a receipt row is written. It is idempotent (a second call with nothing changed
returns the receipt it already wrote) and it runs outside the credit transaction: the relay calls it when it sends
the receipt email, the download views when someone asks. The first issue takes the next number of the donation's
year from the locked `ReceiptYear` row in the same transaction as the receipt row, so numbers are consecutive and
none is lost to a rollback. A refund is read from the ledger (donor.Allocation reversals): a partial one gives a new
version with the same number and the amount kept; a full one a void version.
"""

import logging
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from donor.models import Allocation, Donation, Notice
from receipts.models import Receipt, ReceiptYear

logger = logging.getLogger("receipts")
LINK_SALT = "receipts.pdf-link"
RECEIPTED = (Donation.Status.COMPLETED, Donation.Status.REFUNDED)


class ReceiptRefused(Exception):
    """The donation has no receipt (not completed)."""


@dataclass(frozen=True)
class LedgerState:
    received: Decimal
    refunded: Decimal

    @property
    def kept(self) -> Decimal:
        return self.received - self.refunded


def _ledger_state(donation: Donation) -> LedgerState:
    sums = {
        row["entry"]: row["total"]
        for row in donation.allocations.values("entry").annotate(total=Sum("amount")).order_by()
    }
    received = sums.get(Allocation.Entry.CREDIT) or Decimal("0")
    return LedgerState(received=received, refunded=-(sums.get(Allocation.Entry.REVERSAL) or Decimal("0")))


def receipt_year_of(donation: Donation) -> int:
    """A receipt belongs to the local year the gift was completed in."""
    return timezone.localtime(donation.completed_at or donation.updated_at).year


def _counter_ready(year: int) -> None:
    """Make sure the year's counter row exists, in a transaction of its own before the one that locks it.

    Not inside the issuing transaction: on MariaDB an INSERT that meets a concurrent one's duplicate key keeps a
    shared lock on it, and two such issuers asking FOR UPDATE next deadlock each other (seen with 20 at once)."""
    if ReceiptYear.objects.filter(year=year).exists():
        return
    try:
        with transaction.atomic():
            ReceiptYear.objects.create(year=year)
    except IntegrityError:
        pass  # another issuer created it first


def _next_number(year: int) -> tuple[int, str]:
    """Take the year's next sequence under the counter row's lock (the caller's transaction holds it)."""
    counter = ReceiptYear.objects.select_for_update().filter(year=year).first()
    if counter is None:  # completed between our unlocked read and the lock: a rare first of its year
        counter = ReceiptYear.objects.create(year=year)
    counter.last_sequence += 1
    counter.save(update_fields=["last_sequence"])
    return counter.last_sequence, f"RCT-{year}-{counter.last_sequence:06d}"


def receipt_issue(*, donation_id: int) -> Receipt:
    """The current receipt of a completed (or refunded) donation, written now if the ledger says something the
    last version does not. Raises ReceiptRefused for a donation that was never completed. Its PDF is rendered by
    whoever reads it first (the email relay or a download), once: documents.document_pdf keeps it by content hash."""
    unlocked = Donation.objects.get(pk=donation_id)
    if unlocked.status in RECEIPTED and not unlocked.receipts.exists():
        _counter_ready(receipt_year_of(unlocked))  # completed_at no longer changes: the year is known unlocked
    with transaction.atomic():
        # The donation's lock serialises issuers of one donation; the year's counter is taken after it, always in
        # this order, so two issuers never wait on each other crosswise.
        donation = Donation.objects.select_for_update().select_related("donor").get(pk=donation_id)
        if donation.status not in RECEIPTED:
            raise ReceiptRefused(f"Donation {donation.reference} is {donation.status}: it has no receipt.")
        state = _ledger_state(donation)
        if state.received <= 0:
            raise ReceiptRefused(f"Donation {donation.reference} has no credit on the ledger: it has no receipt.")
        void = donation.status == Donation.Status.REFUNDED or state.kept <= 0
        latest = donation.receipts.order_by("-version").first()
        if latest is not None and latest.refunded == state.refunded and latest.void == void:
            return latest
        if latest is None:
            year = receipt_year_of(donation)
            sequence, number = _next_number(year)
            version = 1
        else:
            year, sequence, number, version = latest.year, latest.sequence, latest.number, latest.version + 1
        receipt = Receipt.objects.create(
            donation=donation,
            number=number,
            year=year,
            sequence=sequence,
            version=version,
            amount=max(state.kept, Decimal("0")),
            refunded=state.refunded,
            currency=donation.currency,
            void=void,
            voided_at=timezone.now() if void else None,
            language=(donation.donor.language if donation.donor else "") or settings.LANGUAGE_CODE[:2],
        )
    logger.info("Receipt %s v%s issued for donation %s", receipt.number, receipt.version, donation.reference)
    return receipt


def receipt_deliver(*, receipt: Receipt) -> bool:
    """Record that this version is being handed out; True when it was already (so this one is a copy)."""
    with transaction.atomic():
        taken = Receipt.objects.filter(pk=receipt.pk, delivered_at__isnull=True).update(delivered_at=timezone.now())
    return not taken


def receipt_pdf_for(*, donation_id: int) -> tuple[Receipt, bytes]:
    """The current receipt's PDF for whoever may read it: the original the first time, a marked copy after."""
    from receipts.documents import receipt_pdf

    receipt = receipt_issue(donation_id=donation_id)
    copy = receipt_deliver(receipt=receipt)
    return receipt, receipt_pdf(receipt=receipt, copy=copy)


def receipt_attachments(*, notice: Notice) -> list[tuple[str, bytes, str]]:
    """The PDF the donor's email receipt (or refund notice) carries (added to donor's ATTACHMENT_SOURCES)."""
    if notice.channel != Notice.Channel.EMAIL or notice.kind not in ("receipt", "refund"):
        return []
    donation = Donation.objects.get(pk=notice.donation_id)
    if donation.status not in RECEIPTED:
        return []
    from receipts.documents import receipt_pdf

    try:
        receipt = receipt_issue(donation_id=donation.pk)
    except ReceiptRefused as refused:  # nothing on the ledger to receipt: the email goes without a PDF
        logger.warning("Notice %s: no PDF receipt attached: %s", notice.pk, refused)
        return []
    # The email is the original's delivery, a resend after a failed try included (the same message, one Message-ID):
    # never marked as a copy.
    receipt_deliver(receipt=receipt)
    return [(receipt_filename(receipt), receipt_pdf(receipt=receipt), "application/pdf")]


def receipt_filename(receipt: Receipt) -> str:
    return f"{receipt.number}{f'-v{receipt.version}' if receipt.version > 1 else ''}.pdf"


def receipt_signed_url(*, donation: Donation) -> str | None:
    """The absolute link that downloads the donation's receipt without a login, or None before it is completed.
    Signed with SECRET_KEY over the public token: it cannot be made up from the token or the reference alone."""
    if donation.status not in RECEIPTED:
        return None
    signed = signing.Signer(salt=LINK_SALT).sign(donation.public_token)
    return settings.SITE_URL + reverse("receipt-signed-pdf", kwargs={"signed": signed})


def receipt_donation_for_link(*, signed: str) -> Donation | None:
    """The donation a signed receipt link names, or None when the signature does not hold."""
    try:
        token = signing.Signer(salt=LINK_SALT).unsign(signed)
    except signing.BadSignature:
        return None
    return Donation.objects.filter(public_token=token, status__in=RECEIPTED).first()
