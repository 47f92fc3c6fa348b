import json

from django.contrib import admin, messages
from django.utils.html import format_html

from donor.phone_numbers import mask_msisdn
from payments import payout_admin  # noqa: F401  (registers the Payout admin: maker-checker screens)
from payments.models import CallbackEvent, Payment
from payments.services.dispatch import callback_replay
from payments.services.paybill import HeldConfirmationRefused, paybill_accept_held
from payments.services.payments import payment_confirm


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = [
        "reference",
        "provider",
        "channel",
        "amount",
        "currency",
        "status",
        "masked_msisdn",
        "provider_reference",
        "receipt",
        "needs_review",
        "created_at",
    ]
    list_filter = [
        "status",
        "provider",
        "channel",
        "currency",
        "needs_review",
        ("created_at", admin.DateFieldListFilter),
    ]
    search_fields = ["reference", "provider_reference", "receipt", "donation__reference"]
    readonly_fields = [f.name for f in Payment._meta.fields if f.name not in ("msisdn", "callback_token_digest")]
    exclude = ["msisdn", "callback_token_digest"]
    actions = ["check_with_provider"]
    list_select_related = ["donation"]

    def has_check_permission(self, request) -> bool:
        return request.user.has_perm("payments.check_payment")

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="Phone")
    def masked_msisdn(self, payment: Payment) -> str:
        return mask_msisdn(payment.msisdn)

    @admin.action(description="Check with provider now", permissions=["check"])
    def check_with_provider(self, request, queryset):
        for payment in queryset:
            # On demand: the answer is applied, the reconciliation ladder keeps its schedule.
            result, outcome = payment_confirm(payment_id=payment.pk, on_demand=True)
            said = result.status if result else "no answer"
            level = messages.SUCCESS if outcome.changed else messages.INFO
            self.message_user(
                request, f"{payment.reference}: provider says {said}; {outcome.status} ({outcome.detail})", level
            )


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
