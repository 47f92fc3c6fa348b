"""The donor's JSON API: registration (an answer that never says whether an account exists), their donations,
and logout, which revokes every token of the account. Views stay thin: donor/services.py holds the rules."""

from django.contrib.auth.password_validation import MinimumLengthValidator, get_default_password_validators
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from config.pagination import StrictPageNumberPagination
from config.schema import DocumentedCharField, trimmed_length_pattern
from donor.models import Donation
from donor.selectors import donation_list_for_donor
from donor.services import donor_for_user, donor_signup
from donor.tokens import tokens_revoke

# The one answer to a registration that is valid in itself (donor.services.donor_signup).
REGISTRATION_MESSAGE = (
    "Thank you. If this username and email address were free, your account has been created. We have sent an "
    "email to the address either way: it says whether you can sign in now, or what to do instead."
)


def password_min_length() -> int:
    """The shortest password AUTH_PASSWORD_VALIDATORS accept (1 without a MinimumLengthValidator)."""
    lengths = [v.min_length for v in get_default_password_validators() if isinstance(v, MinimumLengthValidator)]
    return max(lengths, default=1)


def password_schema(*, max_length: int) -> dict:
    length = password_min_length()
    return {"type": "string", "minLength": length, "maxLength": max_length, "pattern": trimmed_length_pattern(length)}


class DonorRegisterApi(APIView):
    authentication_classes: list = []

    class DonorRegisterInputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        # Django's password validators decide (AUTH_PASSWORD_VALIDATORS, in donor_register); the schema states
        # the one of them a schema can: the minimum length.
        password = DocumentedCharField(
            write_only=True,
            max_length=128,
            help_text="Checked by Django's password validators: long enough, not common, not all digits, "
            "not like the username or email",
            openapi_schema=lambda: password_schema(max_length=128),
        )
        email = serializers.EmailField(max_length=254)
        name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        phone_number = serializers.CharField(
            max_length=32,
            required=False,
            allow_blank=True,
            default="",
            help_text="Any valid number: national (Tanzania) or international with its country code",
        )

    class DonorRegisterOutputSerializer(serializers.Serializer):
        message = serializers.CharField()

    @extend_schema(
        request=DonorRegisterInputSerializer,
        responses={
            202: OpenApiResponse(
                DonorRegisterOutputSerializer,
                description="The same answer whether or not the username or email already had an account (so it "
                "tells no one who has one): the email address is told which, and the donor then signs in.",
            )
        },
    )
    def post(self, request) -> Response:
        data = self.DonorRegisterInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        donor_signup(**data.validated_data)
        return Response({"message": REGISTRATION_MESSAGE}, status=status.HTTP_202_ACCEPTED)


class DonationListOutputSerializer(serializers.ModelSerializer):
    patient = serializers.CharField(source="patient.code", default=None)
    receipt = serializers.SerializerMethodField()

    class Meta:
        model = Donation
        fields = [
            "reference",
            "public_token",
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
    pagination_class = StrictPageNumberPagination
    serializer_class = DonationListOutputSerializer

    def get_queryset(self):
        return donation_list_for_donor(donor=donor_for_user(user=self.request.user)).prefetch_related("payments")


class LogoutApi(APIView):
    """Sign out everywhere: every access and refresh token of this account issued until now stops working
    (donor/tokens.py). Sign in again for new ones."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def post(self, request) -> Response:
        tokens_revoke(user_id=request.user.pk, reason="logout")
        return Response(status=status.HTTP_204_NO_CONTENT)
