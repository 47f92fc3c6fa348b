"""POST /api/v1.0/donors/pledges/: the donation request's fields plus `day_of_month`, checked by the donation's
own service; 201 with the pledge's reference, status, next due date and signed manage link."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import error_body
from config.schema import error_response
from payments.apis import DonationCreateApi, _first_error, _validation_error
from payments.services.donations import DonationRefused, ProviderUnavailable
from pledges.services import manage_url, pledge_create


class PledgeInputSerializer(DonationCreateApi.InputSerializer):
    day_of_month = serializers.IntegerField(min_value=1, max_value=28, help_text="Day of each month to pay (1–28)")


class PledgeOutputSerializer(serializers.Serializer):
    reference = serializers.CharField()
    status = serializers.CharField()
    next_due_on = serializers.DateField()
    manage_url = serializers.CharField(
        required=False, help_text="Signed link (no login) to skip, pause, resume, change or cancel"
    )
    amount = serializers.CharField()
    currency = serializers.CharField()
    day_of_month = serializers.IntegerField()
    patient = serializers.CharField(source="patient.code", allow_null=True, default=None)


class PledgeCreateApi(APIView):
    """Start a monthly pledge: a reminder two days before each due date, then a payment prompt on the day.
    Guests and JWT donors alike (a JWT attaches it to the account)."""

    @extend_schema(
        request=PledgeInputSerializer,
        responses={
            201: PledgeOutputSerializer,
            400: error_response("`VALIDATION_ERROR`: a field breaks a rule; `errors` names each."),
            503: error_response("`SERVICE_UNAVAILABLE`: the chosen provider cannot be used here now."),
        },
    )
    def post(self, request) -> Response:
        serializer = PledgeInputSerializer(data=request.data)
        if not serializer.is_valid():
            body = error_body(400, _first_error(serializer.errors), "VALIDATION_ERROR", errors=serializer.errors)
            return Response(body, status=400)
        try:
            pledge = pledge_create(
                serializer.to_request(), day_of_month=serializer.validated_data["day_of_month"], user=request.user
            )
        except DonationRefused as refused:
            return Response(_validation_error(refused.errors), status=400)
        except ProviderUnavailable as unavailable:
            return Response(error_body(503, unavailable.message, "SERVICE_UNAVAILABLE"), status=503)
        body = PledgeOutputSerializer(pledge).data
        return Response({**body, "manage_url": manage_url(pledge)}, status=201)
