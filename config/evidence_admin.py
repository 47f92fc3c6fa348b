"""Money records are evidence: the admin may show them, never add, edit or delete them — not even for a
superuser. Corrections go through the services (review resolution, refunds), which record themselves."""

from django.contrib import admin
from django.http import HttpRequest


class EvidenceAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
