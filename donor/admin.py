from django.contrib import admin
from django.http import HttpResponse

from config.csv_safety import SafeCsvWriter
from config.evidence_admin import EvidenceAdmin
from donor.models import Allocation, Donation, Donor
from donor.phone_numbers import mask_msisdn


@admin.register(Donor)
class DonorAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "email", "masked_phone", "user", "created_at"]
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
