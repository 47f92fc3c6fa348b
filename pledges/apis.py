"""POST /api/v1.0/donors/pledges/: the donation request's fields plus `day_of_month`, checked by the donation's
own service; 201 with the pledge's reference, status, next due date and signed manage link."""

import functools

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import error_body
from config.schema import error_response, inline_enum_components
from payments.api_schema import DonationInputSerializer, LiveVariants, _variant_serializer
from payments.apis import _first_error, _validation_error
from payments.services.donations import DonationRefused, DonationShape, ProviderUnavailable, donation_shapes
from pledges.services import manage_url, pledge_create


class PledgeInputSerializer(DonationInputSerializer):
    day_of_month = serializers.IntegerField(min_value=1, max_value=28, help_text="Day of each month to pay (1–28)")


def pledge_request_variants() -> list[serializers.Serializer]:
    """The documented body: the donation request's variants (the same rules) that prompt a phone, each with
    `day_of_month`; a pledge needs the phone that is prompted every month."""
    return [_pledge_variant(shape)() for shape in donation_shapes() if shape.phone_required]


@functools.cache
def _pledge_variant(shape: DonationShape) -> type[serializers.Serializer]:
    base = _variant_serializer(shape)
    name = "Pledge" + base.__name__.removeprefix("Donation")
    inline_enum_components.add(name)
    day = serializers.IntegerField(min_value=1, max_value=28, help_text="Day of each month to pay (1–28)")
    return type(name, (base,), {"day_of_month": day})


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
    language = serializers.ChoiceField(
        choices=["en", "sw"], help_text="The language of the pledge's messages: the request's Accept-Language"
    )


def _not_strings(data) -> list[str]:
    """The text fields of the body sent as something other than text (null allowed where the field allows it)."""
    if not isinstance(data, dict):
        return []
    fields = PledgeInputSerializer().fields
    return [
        name
        for name, field in fields.items()
        if isinstance(field, serializers.CharField) and not isinstance(field, serializers.ChoiceField)
        and name in data and not isinstance(data[name], str) and not (data[name] is None and field.allow_null)
    ]  # fmt: skip


class PledgeCreateApi(APIView):
    """Start a monthly pledge: a reminder two days before each due date, then a payment prompt on the day.
    Guests and JWT donors alike (a JWT attaches it to the account)."""

    @extend_schema(
        request=LiveVariants(
            component_name="PledgeRequest", serializers=lambda: pledge_request_variants(), resource_type_field_name=None
        ),
        responses={
            201: PledgeOutputSerializer,
            400: error_response("`VALIDATION_ERROR`: a field breaks a rule; `errors` names each."),
            503: error_response("`SERVICE_UNAVAILABLE`: the chosen provider cannot be used here now."),
        },
    )
    def post(self, request) -> Response:
        serializer = PledgeInputSerializer(data=request.data)
        wrong = _not_strings(request.data)
        if wrong:  # DRF would turn 4.08e+223 into the name "4.08e+223"; the schema says a string
            errors = {name: ["Not a valid string."] for name in wrong}
            return Response(error_body(400, _first_error(errors), "VALIDATION_ERROR", errors=errors), status=400)
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
