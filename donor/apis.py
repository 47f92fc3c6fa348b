from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from donor.models import Donation
from donor.selectors import donation_list_for_donor
from donor.services import donor_for_user, donor_register


class DonorRegisterApi(APIView):
    authentication_classes: list = []

    class DonorRegisterInputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(write_only=True, max_length=128)
        email = serializers.EmailField()
        name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        phone_number = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")

    class DonorRegisterOutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        username = serializers.CharField(source="user.username")
        email = serializers.EmailField()
        name = serializers.CharField()
        phone_number = serializers.CharField(source="phone")

    @extend_schema(request=DonorRegisterInputSerializer, responses={201: DonorRegisterOutputSerializer})
    def post(self, request) -> Response:
        data = self.DonorRegisterInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        donor = donor_register(**data.validated_data)
        return Response(self.DonorRegisterOutputSerializer(donor).data, status=status.HTTP_201_CREATED)


class DonationListOutputSerializer(serializers.ModelSerializer):
    patient = serializers.CharField(source="patient.code", default=None)
    receipt = serializers.SerializerMethodField()

    class Meta:
        model = Donation
        fields = [
            "reference",
            "patient",
            "amount",
            "currency",
            "status",
            "status_reason",
            "anonymous",
            "receipt",
            "created_at",
            "completed_at",
        ]

    def get_receipt(self, donation: Donation) -> str:
        return next((p.receipt for p in donation.payments.all() if p.status == "succeeded"), "")


class MyDonationsApi(ListAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = DonationListOutputSerializer

    def get_queryset(self):
        return donation_list_for_donor(donor=donor_for_user(user=self.request.user)).prefetch_related("payments")
