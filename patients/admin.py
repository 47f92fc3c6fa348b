from django.contrib import admin
from django.utils.html import format_html

from patients.models import Patient, TreatmentPartner


@admin.register(TreatmentPartner)
class TreatmentPartnerAdmin(admin.ModelAdmin):
    list_display = ["name", "city", "country", "payout_provider"]
    search_fields = ["name", "city"]
    list_filter = ["country", "payout_provider"]


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "name",
        "condition",
        "currency",
        "funding_goal",
        "funding_received",
        "progress",
        "status",
        "published",
    ]
    list_filter = ["status", "published", "currency", "treatment_partner"]
    search_fields = ["code", "name", "condition"]
    # The ledger owns these: editing them by hand would make verify_ledger fail.
    readonly_fields = ["funding_received", "fully_funded_at", "created_at", "updated_at"]
    list_select_related = ["treatment_partner"]

    @admin.display(description="Progress")
    def progress(self, patient: Patient) -> str:
        return format_html(
            '<progress value="{}" max="100"></progress> {}%', patient.funding_percent, patient.funding_percent
        )
