"""The payments admin: every attempt with its provider, read-only; "Check with provider now" (permission)."""

from django.contrib import admin, messages

from donor.phone_numbers import mask_msisdn
from payments.models import Payment
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
