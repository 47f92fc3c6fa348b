"""The patient detail route under /api/v1.0/patients/, with the money trail (payments/patient_apis.py); mounted
before patients.urls so it answers for `<code>/`."""

from django.urls import path

from payments.patient_apis import PatientDetailApi

urlpatterns = [path("<str:code>/", PatientDetailApi.as_view(), name="patient-detail")]
