"""Who did what to money, and each payment's history: read-only, for everyone."""

from django.contrib import admin

from config.evidence_admin import EvidenceAdmin
from payments.models import AuditEntry, LedgerCheck, PaymentHistory


@admin.register(AuditEntry)
class AuditEntryAdmin(EvidenceAdmin):
    list_display = ["at", "actor", "action", "target", "detail"]
    list_filter = ["action", ("at", admin.DateFieldListFilter)]
    search_fields = ["target", "detail", "actor__username"]


@admin.register(PaymentHistory)
class PaymentHistoryAdmin(EvidenceAdmin):
    list_display = ["at", "payment", "kind", "summary", "cause"]
    list_filter = ["kind", ("at", admin.DateFieldListFilter)]
    search_fields = ["payment__reference", "summary", "cause"]
    list_select_related = ["payment"]


@admin.register(LedgerCheck)
class LedgerCheckAdmin(EvidenceAdmin):
    """The runs of `verify_ledger`: when the book was proven, and what disagreed."""

    list_display = ["at", "ok", "problems"]
    list_filter = ["ok"]
    fields = ["at", "ok", "problems", "report"]
