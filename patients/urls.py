"""The patient API under /api/v1.0/patients/: the published list and one patient by code."""

from django.urls import path

from patients.apis import PatientDetailApi, PatientListApi

urlpatterns = [
    path("", PatientListApi.as_view(), name="patient-list"),
    path("<str:code>/", PatientDetailApi.as_view(), name="patient-detail"),
]
