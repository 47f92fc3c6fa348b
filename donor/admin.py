"""The admin of donors, donations, the allocation ledger and the outbox. Evidence is read-only (EvidenceAdmin);
phone numbers are masked in lists so an operator's screen does not show them whole."""

from django.contrib import admin, messages
from django.http import HttpResponse
from django.utils import timezone

from config.csv_safety import SafeCsvWriter
from config.evidence_admin import EvidenceAdmin
from donor.models import Allocation, Donation, Donor, Notice, NoticeSubscription, SmsMessage, SmsOptOut
from donor.phone_numbers import mask_msisdn


@admin.register(Donor)
class DonorAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "email", "masked_phone", "user", "language", "created_at"]
    search_fields = ["name", "email", "phone", "user__username"]

    @admin.display(description="Phone")
    def masked_phone(self, donor: Donor) -> str:
        return mask_msisdn(donor.phone)


@admin.register(Donation)
class DonationAdmin(EvidenceAdmin):
    list_display = [
        "reference",
        "patient",
        "amount",
        "currency",
        "status",
        "needs_review",
        "donor_masked_phone",
        "created_at",
        "completed_at",
    ]
    list_filter = ["status", "currency", "needs_review", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["reference", "donor__phone", "donor__email", "donor__name", "payments__provider_reference"]
    readonly_fields = [f.name for f in Donation._meta.fields]
    list_select_related = ["patient", "donor"]
    actions = ["export_csv"]

    @admin.display(description="Phone")
    def donor_masked_phone(self, donation: Donation) -> str:
        return mask_msisdn(donation.donor.phone) if donation.donor else ""

    @admin.action(description="Export selected donations as CSV")
    def export_csv(self, request, queryset):
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="donations.csv"'
        writer = SafeCsvWriter(response)  # no cell a spreadsheet would run as a formula
        writer.writerow(["reference", "patient", "amount", "currency", "status", "created_at", "completed_at"])
        for d in queryset.select_related("patient"):
            writer.writerow(
                [
                    d.reference,
                    d.patient.code if d.patient else "general fund",
                    d.amount,
                    d.currency,
                    d.status,
                    d.created_at.isoformat(),
                    d.completed_at.isoformat() if d.completed_at else "",
                ]
            )
        return response


@admin.register(Allocation)
class AllocationAdmin(EvidenceAdmin):
    list_display = ["donation", "entry", "target", "patient", "amount", "currency", "created_at"]
    list_filter = ["entry", "currency", "target"]
    search_fields = ["donation__reference", "patient__code"]


@admin.register(Notice)
class NoticeAdmin(EvidenceAdmin):
    """The outbox of receipts and notices: what was sent, what waits for its next try, what gave up and why."""

    list_display = ["created_at", "donation", "kind", "channel", "status", "attempts", "next_attempt_at", "last_error"]
    list_filter = ["status", "kind", "channel"]
    search_fields = ["donation__reference", "last_error", "treatment_update__patient__code"]
    list_select_related = ["donation"]
    actions = ["send_again"]

    def has_send_again_permission(self, request) -> bool:
        return request.user.has_perm("donor.change_notice")

    @admin.action(description="Try again now (after fixing the mail or Telegram settings)", permissions=["send_again"])
    def send_again(self, request, queryset):
        retried = queryset.exclude(status=Notice.Status.SENT).update(
            status=Notice.Status.PENDING, next_attempt_at=timezone.now(), attempts=0
        )
        self.message_user(request, f"{retried} notice(s) will be sent by the next relay run.", messages.SUCCESS)


@admin.register(SmsMessage)
class SmsMessageAdmin(admin.ModelAdmin):
    """Every SMS sent or tried, the number masked (the full one is needed only to send)."""

    list_display = ["created_at", "key", "masked_number", "status", "gateway", "attempts", "reason"]
    list_filter = ["status", "gateway"]
    search_fields = ["key", "gateway_message_id"]
    exclude = ["msisdn"]
    readonly_fields = ["key", "masked_number", "text", "gateway", "status", "gateway_message_id", "reason", "attempts"]

    @admin.display(description="Number")
    def masked_number(self, obj: SmsMessage) -> str:
        return mask_msisdn(obj.msisdn)

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(SmsOptOut)
class SmsOptOutAdmin(admin.ModelAdmin):
    """Numbers that refused our messages; deleting a row lets us text that number again."""

    list_display = ["created_at", "masked_number", "reason"]
    exclude = ["msisdn"]
    readonly_fields = ["masked_number", "reason"]

    @admin.display(description="Number")
    def masked_number(self, obj: SmsOptOut) -> str:
        return mask_msisdn(obj.msisdn)

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(NoticeSubscription)
class NoticeSubscriptionAdmin(admin.ModelAdmin):
    """Who stopped treatment updates on a channel (their signed link or mail client), and SMS opt-ins, which
    staff record when a donor asks for updates by text (source "staff"). Numbers masked in the list."""

    list_display = ["changed_at", "channel", "shown_address", "subscribed", "source"]
    list_filter = ["channel", "subscribed", "source"]
    search_fields = ["address"]

    @admin.display(description="Address")
    def shown_address(self, obj: NoticeSubscription) -> str:
        return mask_msisdn(obj.address) if obj.channel == Notice.Channel.SMS else obj.address

    def save_model(self, request, obj: NoticeSubscription, form, change) -> None:
        obj.address = obj.address.strip().lower()  # as the fan-out compares them (emails in lower case)
        if not change:
            obj.source = obj.source or "staff"
        super().save_model(request, obj, form, change)
