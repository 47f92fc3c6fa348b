from django.db.models import QuerySet

from patients.models import Patient


def patient_list_published() -> QuerySet[Patient]:
    return Patient.objects.filter(published=True).select_related("treatment_partner").order_by("code")


def patient_get_published(*, code: str) -> Patient | None:
    return patient_list_published().filter(code__iexact=code.strip()).first()
