"""The patient API under /api/v1.0/patients/: the published list (one patient by code: payments/patient_urls.py)."""

from django.urls import path

from patients.apis import PatientListApi

# One patient (`<code>/`) is answered by payments/patient_urls.py, mounted first: it adds the money trail.
urlpatterns = [
    path("", PatientListApi.as_view(), name="patient-list"),
]
