"""The callback inbox in the admin: read-only evidence (body pretty-printed, secrets redacted); replay, dry-run
replay and crediting a held paybill confirmation, each behind its permission."""

import json

from django.contrib import admin, messages
from django.utils.html import format_html

from payments.models import CallbackEvent
from payments.services.dispatch import callback_replay
from payments.services.paybill import HeldConfirmationRefused, paybill_accept_held


@admin.register(CallbackEvent)
class CallbackEventAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "provider",
        "kind",
        "status",
        "trust",
        "our_reference",
        "provider_reference",
        "client_ip",
        "attempts",
        "received_at",
    ]
    list_filter = ["status", "provider", "kind", "trust", ("received_at", admin.DateFieldListFilter)]
    search_fields = ["our_reference", "provider_reference", "body_digest", "error"]
    readonly_fields = [
        "pretty_body",
        "headers",
        "provider",
        "kind",
        "client_ip",
        "body_digest",
        "dedup_key",
        "duplicate_of",
        "status",
        "trust",
        "error",
        "attempts",
        "payment",
        "our_reference",
        "provider_reference",
        "received_at",
        "processed_at",
    ]
    exclude = ["body", "url_token_digest"]
    actions = ["replay", "dry_run_replay", "accept_held_paybill"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # viewable, never editable: it is evidence

    def has_replay_permission(self, request) -> bool:
        return request.user.has_perm("payments.replay_callbackevent")

    def has_accept_held_permission(self, request) -> bool:
        return request.user.has_perm("payments.accept_held_callbackevent")

    @admin.action(
        description="Credit held paybill confirmations (checked on the M-Pesa statement)", permissions=["accept_held"]
    )
    def accept_held_paybill(self, request, queryset):
        for event in queryset:
            try:
                outcome = paybill_accept_held(event_id=event.pk, accepted_by=request.user)
            except HeldConfirmationRefused as refused:
                self.message_user(request, f"#{event.pk}: {refused}", messages.ERROR)
                continue
            self.message_user(request, f"#{event.pk}: {outcome.code} — {outcome.message}", messages.SUCCESS)

    @admin.display(description="Body (secrets redacted)")
    def pretty_body(self, event: CallbackEvent) -> str:
        try:
            text = json.dumps(json.loads(event.body), indent=2, ensure_ascii=False)
        except ValueError:
            text = event.body
        return format_html("<pre>{}</pre>", text)

    @admin.action(description="Replay", permissions=["replay"])
    def replay(self, request, queryset):
        for event in queryset:
            outcome = callback_replay(event=event)
            self.message_user(request, f"#{event.pk}: {outcome.code} — {outcome.message}")

    @admin.action(description="Dry-run replay (show what would change)", permissions=["replay"])
    def dry_run_replay(self, request, queryset):
        for event in queryset:
            outcome = callback_replay(event=event, dry_run=True)
            self.message_user(request, f"#{event.pk} would be: {outcome.code} — {outcome.message} (nothing saved)")
