"""The payments admin: every attempt with its provider, read-only evidence, with its timeline; "Check with
provider now" (permission)."""

from django.contrib import admin, messages
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from config.evidence_admin import EvidenceAdmin
from donor.phone_numbers import mask_msisdn
from payments.models import Payment
from payments.selectors import payment_timeline
from payments.services.audit import audit_record, payment_target
from payments.services.payments import payment_confirm

from .settlement import settlement_view

TIMELINE_KINDS = {
    "start": "request",
    "status_query": "status query",
    "transition": "state change",
    "callback": "callback",
    "audit": "by hand",
    "scheduled": "next",
}


@admin.register(Payment)
class PaymentAdmin(EvidenceAdmin):
    change_form_template = "admin/payments/payment/change_form.html"
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
        ("completed_at", admin.DateFieldListFilter),
    ]
    search_fields = ["reference", "provider_reference", "receipt", "donation__reference"]
    readonly_fields = ["timeline"] + [
        f.name for f in Payment._meta.fields if f.name not in ("msisdn", "callback_token_digest")
    ]
    exclude = ["msisdn", "callback_token_digest"]
    actions = ["check_with_provider"]
    list_select_related = ["donation"]

    def has_check_permission(self, request) -> bool:
        return request.user.has_perm("payments.check_payment")

    def get_urls(self):
        settlement = path(
            "settlement/",
            self.admin_site.admin_view(lambda request: settlement_view(self, request)),
            name="payments_payment_settlement",
        )
        return [settlement, *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        payment = self.get_object(request, object_id)
        context = {"can_check": bool(payment and not payment.is_terminal and self.has_check_permission(request))}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **context})

    @admin.display(description="Timeline")
    def timeline(self, payment: Payment) -> str:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    f"{entry.at:%Y-%m-%d %H:%M:%S}",
                    TIMELINE_KINDS.get(entry.kind, entry.kind),
                    _event_link(entry.event_id, entry.summary) if entry.event_id else entry.summary,
                    entry.detail,
                )
                for entry in payment_timeline(payment=payment)
            ),
        )
        return format_html(
            '<table class="timeline"><thead><tr><th>when</th><th>what</th><th>summary</th><th>detail</th></tr>'
            "</thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="Phone")
    def masked_msisdn(self, payment: Payment) -> str:
        return mask_msisdn(payment.msisdn)

    @admin.action(description="Check with provider now", permissions=["check"])
    def check_with_provider(self, request, queryset):
        for payment in queryset:
            # On demand: the answer is applied, the reconciliation ladder keeps its schedule.
            result, outcome = payment_confirm(payment_id=payment.pk, on_demand=True)
            said = result.status if result else "no answer"
            audit_record(
                actor=request.user, action="payment.check", target=payment_target(payment),
                detail=f"provider says {said}; {outcome.status}",
            )  # fmt: skip
            level = messages.SUCCESS if outcome.changed else messages.INFO
            self.message_user(
                request, f"{payment.reference}: provider says {said}; {outcome.status} ({outcome.detail})", level
            )


def _event_link(event_id: int, text: str) -> str:
    return format_html('<a href="{}">{}</a>', reverse("admin:payments_callbackevent_change", args=[event_id]), text)
