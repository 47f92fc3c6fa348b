"""The public patient API: published patients only, with what the portal shows a donor (the partner's name,
never its wallet). One patient by code is payments/patient_apis.py's (it adds the money trail)."""

from rest_framework import serializers
from rest_framework.generics import ListAPIView

from config.pagination import StrictPageNumberPagination
from patients.models import Patient
from patients.selectors import patient_list_published


class PatientOutputSerializer(serializers.ModelSerializer):
    funding_percent = serializers.IntegerField(read_only=True)
    amount_needed = serializers.DecimalField(max_digits=12, decimal_places=2, read_only=True)
    treatment_partner = serializers.CharField(source="treatment_partner.name", default="", read_only=True)

    class Meta:
        model = Patient
        fields = [
            "code",
            "name",
            "story",
            "condition",
            "treatment",
            "treatment_partner",
            "photo_url",
            "currency",
            "funding_goal",
            "funding_received",
            "funding_percent",
            "amount_needed",
            "status",
            "fully_funded_at",
        ]


class PatientListApi(ListAPIView):
    serializer_class = PatientOutputSerializer
    pagination_class = StrictPageNumberPagination
    authentication_classes: list = []

    def get_queryset(self):
        return patient_list_published()
