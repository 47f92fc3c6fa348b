"""Who did what to money, and each payment's history: read-only, for everyone."""

from django.contrib import admin

from config.evidence_admin import EvidenceAdmin
from payments.models import AuditEntry, PaymentHistory


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
