"""The admin's view of receipts: every version under its number, read-only (a receipt is evidence; a refund
issues a new version through receipts.services, never an edit)."""

from django.contrib import admin

from config.evidence_admin import EvidenceAdmin
from receipts.models import Receipt


@admin.register(Receipt)
class ReceiptAdmin(EvidenceAdmin):
    list_display = ["number", "version", "donation", "amount", "refunded", "currency", "void", "language",
                    "issued_at", "delivered_at"]  # fmt: skip
    list_filter = ["void", "year", "language"]
    search_fields = ["number", "donation__reference"]
    raw_id_fields = ["donation"]
