"""The patient detail API (`GET /api/v1.0/patients/<code>/`): what patients/apis.py answers, plus where the money
went (payments/transparency.py, the ledger's figures), the approved treatment updates, the share links and the
paybill a donor can pay without the site. It lives here because the patients app sits below the ledger and
payouts; the route is mounted ahead of patients.urls' (config/urls.py)."""

from django.conf import settings
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import error_body
from patients.apis import PatientOutputSerializer
from patients.selectors import patient_get_published
from patients.updates import treatment_updates_published
from payments.transparency import patient_money_trail, paybill_ways

MONEY = {"max_digits": 14, "decimal_places": 2}


class PaidOutSerializer(serializers.Serializer):
    paid_at = serializers.DateTimeField()
    amount = serializers.DecimalField(**MONEY)
    currency = serializers.CharField()
    receipt = serializers.CharField(help_text="The provider's receipt of the payout")


class MoneyTrailSerializer(serializers.Serializer):
    currency = serializers.CharField()
    received_count = serializers.IntegerField()
    received = serializers.DecimalField(**MONEY)
    refunded_count = serializers.IntegerField()
    refunded = serializers.DecimalField(**MONEY)
    net_received = serializers.DecimalField(**MONEY)
    paid_out = serializers.DecimalField(**MONEY)
    payouts = PaidOutSerializer(many=True)
    held = serializers.DecimalField(**MONEY)
    still_needed = serializers.DecimalField(**MONEY)


class UpdateSerializer(serializers.Serializer):
    kind = serializers.CharField()
    text = serializers.CharField()
    photo_url = serializers.CharField()
    published_at = serializers.DateTimeField(source="decided_at")


class PaybillSerializer(serializers.Serializer):
    rail = serializers.CharField()
    paybill = serializers.CharField()
    account = serializers.CharField()


class ShareSerializer(serializers.Serializer):
    url = serializers.URLField(help_text="The short link /p/<code>")
    card_png = serializers.URLField(help_text="The 1200×630 card its Open Graph tags name")
    qr_svg = serializers.URLField(help_text="A QR code of the short link")
    paybill = PaybillSerializer(many=True, help_text="How to pay without the site, where a rail takes paybill")


class PatientDetailSerializer(PatientOutputSerializer):
    money = serializers.SerializerMethodField()
    updates = serializers.SerializerMethodField()
    share = serializers.SerializerMethodField()

    class Meta(PatientOutputSerializer.Meta):
        fields = [*PatientOutputSerializer.Meta.fields, "money", "updates", "share"]

    @extend_schema_field(MoneyTrailSerializer)
    def get_money(self, patient) -> dict:
        return MoneyTrailSerializer(patient_money_trail(patient=patient)).data

    @extend_schema_field(UpdateSerializer(many=True))
    def get_updates(self, patient) -> list[dict]:
        return UpdateSerializer(treatment_updates_published(patient=patient), many=True).data

    @extend_schema_field(ShareSerializer)
    def get_share(self, patient) -> dict:
        url = f"{settings.SITE_URL}/p/{patient.code}"
        return {
            "url": url,
            "card_png": f"{url}/card.png",
            "qr_svg": f"{url}/qr.svg",
            "paybill": PaybillSerializer(paybill_ways(patient=patient), many=True).data,
        }


class PatientDetailApi(APIView):
    authentication_classes: list = []

    @extend_schema(responses=PatientDetailSerializer)
    def get(self, request, code: str) -> Response:
        patient = patient_get_published(code=code)
        if patient is None:
            return Response(error_body(404, f"No published patient with code {code}."), status=404)
        return Response(PatientDetailSerializer(patient).data)
