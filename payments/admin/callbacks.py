"""The callback inbox in the admin: read-only evidence (body pretty-printed, secrets redacted); replay, dry-run
replay and crediting a held paybill confirmation, each behind its permission."""

import json

from django.contrib import admin, messages
from django.utils.html import format_html

from config.evidence_admin import EvidenceAdmin
from payments.models import CallbackEvent, CallbackRefusal
from payments.services.audit import audit_record
from payments.services.dispatch import callback_replay, money_out_apply_held
from payments.services.money_out import MoneyOutRefused
from payments.services.paybill import HeldConfirmationRefused, paybill_accept_held


@admin.register(CallbackEvent)
class CallbackEventAdmin(EvidenceAdmin):
    change_form_template = "admin/payments/callbackevent/change_form.html"
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
        "body_kept",
        "body_size",
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
        "traceback",
        "attempts",
        "payment",
        "our_reference",
        "provider_reference",
        "received_at",
        "processed_at",
    ]
    exclude = ["body", "url_token_digest"]
    actions = ["replay", "dry_run_replay", "accept_held_paybill", "apply_held_money_out"]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        buttons = [
            (
                "dry_run_replay",
                "Dry-run replay",
                "Runs it through its handler again, shows the outcome, saves nothing.",
            ),
            ("replay", "Replay", "Runs it through its handler again; nothing is credited twice."),
        ]
        event = self.get_object(request, object_id)
        if (
            event is not None
            and event.status == CallbackEvent.Status.REVIEW
            and self.has_accept_held_permission(request)
        ):
            buttons.append(("accept_held_paybill", "Credit held paybill confirmation", "After checking the statement."))
        context = {"can_replay": self.has_replay_permission(request), "replay_buttons": buttons}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **context})

    def has_replay_permission(self, request) -> bool:
        return request.user.has_perm("payments.replay_callbackevent")

    def has_accept_held_permission(self, request) -> bool:
        return request.user.has_perm("payments.accept_held_callbackevent")

    @admin.action(
        description="Credit held paybill confirmations (checked on the M-Pesa statement)", permissions=["accept_held"]
    )
    def accept_held_paybill(self, request, queryset):
        def step(event):
            outcome = paybill_accept_held(event_id=event.pk, accepted_by=request.user)
            return f"{outcome.code} — {outcome.message}"

        self._each_held(request, queryset, step, HeldConfirmationRefused)

    def _each_held(self, request, queryset, step, refusal: type[Exception]) -> None:
        """Run a person's decision on each selected delivery; a refusal is that row's message, not an error page."""
        for event in queryset:
            try:
                said = step(event)
            except refusal as refused:
                self.message_user(request, f"#{event.pk}: {getattr(refused, 'message', refused)}", messages.ERROR)
                continue
            self.message_user(request, f"#{event.pk}: {said}", messages.SUCCESS)

    def has_apply_held_permission(self, request) -> bool:
        return request.user.has_perm("payments.resolve_payout") or request.user.has_perm("payments.resolve_refund")

    @admin.action(
        description="Apply held payout/refund results (checked on the provider's portal)", permissions=["apply_held"]
    )
    def apply_held_money_out(self, request, queryset):
        def step(event):
            done = money_out_apply_held(event_id=event.pk, applied_by=request.user)
            return f"{done.reference} {done.get_status_display()}"

        self._each_held(request, queryset, step, MoneyOutRefused)

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
            audit_record(
                actor=request.user, action="callback.replay", target=f"callback #{event.pk}", detail=outcome.code
            )
            self.message_user(request, f"#{event.pk}: {outcome.code} — {outcome.message}")

    @admin.action(description="Dry-run replay (show what would change)", permissions=["replay"])
    def dry_run_replay(self, request, queryset):
        for event in queryset:
            outcome = callback_replay(event=event, dry_run=True)
            self.message_user(request, f"#{event.pk} would be: {outcome.code} — {outcome.message} (nothing saved)")


@admin.register(CallbackRefusal)
class CallbackRefusalAdmin(EvidenceAdmin):
    """Per client and day: how many callbacks were refused (forged on their bytes, or over the rate limit)."""

    list_display = ["day", "provider", "client_ip", "count", "bytes", "last_verdict", "last_at"]
    list_filter = ["provider", "last_verdict", ("day", admin.DateFieldListFilter)]
    search_fields = ["client_ip"]
    readonly_fields = list_display
