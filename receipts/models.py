"""Receipt numbers and the rendered PDFs.

A completed donation gets one receipt number (`RCT-2026-000123`), unique and gap-free per year: the number comes
from a per-year counter row (`ReceiptYear`) locked in the same transaction that writes the receipt row, so a
rollback gives the number back and two issuers never take the same one. A refund never edits a receipt: it adds a
version under the same number (a partial refund: the amount kept; a full one: void). Rendered PDFs are kept by the
hash of what they show (`ReceiptDocument`), in the database so every host of a several-host deployment sees them.
"""

from django.db import models

from donor.models import Donation
from patients.models import MONEY


class ReceiptYear(models.Model):
    """The last receipt number handed out in a year; its row is locked while the next one is taken."""

    year = models.PositiveSmallIntegerField(primary_key=True)
    last_sequence = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.year}: {self.last_sequence}"


class Receipt(models.Model):
    """One version of a donation's receipt. Version 1 is the receipt of the gift; a later version, same number,
    tells of a refund (`void` when all of it went back)."""

    donation = models.ForeignKey(Donation, on_delete=models.PROTECT, related_name="receipts")
    number = models.CharField(max_length=20, db_index=True)
    year = models.PositiveSmallIntegerField()
    sequence = models.PositiveIntegerField()
    version = models.PositiveSmallIntegerField(default=1)
    amount = models.DecimalField(**MONEY, help_text="What the donor gave and we kept, after refunds")
    refunded = models.DecimalField(**MONEY, default=0)
    currency = models.CharField(max_length=3)
    void = models.BooleanField(default=False)
    voided_at = models.DateTimeField(null=True, blank=True)
    language = models.CharField(max_length=10, default="en")
    issued_at = models.DateTimeField(auto_now_add=True)
    # The first time this version's PDF was handed out (email or download); any later one is marked a copy.
    delivered_at = models.DateTimeField(null=True, blank=True)
    content_hash = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the original PDF's content")

    class Meta:
        ordering = ["-year", "-sequence", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["donation", "version"], name="receipt_once_per_donation_version"),
            models.UniqueConstraint(fields=["year", "sequence", "version"], name="receipt_number_once_per_version"),
        ]

    def __str__(self) -> str:
        return f"{self.number} v{self.version}{' (void)' if self.void else ''}"


class ReceiptDocument(models.Model):
    """A rendered PDF by the SHA-256 of its content (receipts/documents.py): rendered once, served many times."""

    content_hash = models.CharField(max_length=64, unique=True)
    pdf = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.content_hash[:12]
