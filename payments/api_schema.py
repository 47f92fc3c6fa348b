"""The donation API's serializers and its documented schema, apart from the views (apis.py).

The request is documented as a oneOf of the kinds of request the rules accept (DonationShape), built from
the registry and settings each time the schema is; that machinery and the status body's serializer are
long and change for other reasons than the views, so they live here.
"""

import copy
import functools

from drf_spectacular.serializers import PolymorphicProxySerializerExtension
from drf_spectacular.utils import PolymorphicProxySerializer
from rest_framework import serializers

from config.schema import DocumentedCharField, DocumentedDecimalField, amount_schema, inline_enum_components
from donor.models import Donation
from donor.phone_numbers import mobile_number_pattern
from payments.models import Payment
from payments.selectors import payment_latest_for_donation
from payments.services.donations import DonationRequest, DonationShape, collection_provider_codes, donation_shapes
from receipts.services import receipt_signed_url


class DonationStatusSerializer(serializers.Serializer):
    """The status body, read from our database (never from the provider)."""

    reference = serializers.CharField()
    status = serializers.CharField()
    status_reason = serializers.CharField()
    transactionId = serializers.SerializerMethodField()
    receipt = serializers.SerializerMethodField()
    amount = serializers.CharField()
    currency = serializers.CharField()
    patient = serializers.SerializerMethodField()
    provider = serializers.SerializerMethodField()
    updated_at = serializers.SerializerMethodField()
    receipt_pdf_url = serializers.SerializerMethodField(
        help_text="Once the donation is completed (or refunded): the absolute, signed link of its PDF receipt, which "
        "works without a login (the first download is the original, later ones are marked as copies). Null before."
    )

    def _payment(self, donation: Donation) -> Payment | None:
        return self.context.get("payment")

    def get_transactionId(self, donation: Donation) -> str | None:  # noqa: N802 (the contract's name)
        payment = self._payment(donation)
        return payment.provider_reference if payment else None

    def get_receipt(self, donation: Donation) -> str:
        payment = self._payment(donation)
        return payment.receipt if payment else ""

    def get_patient(self, donation: Donation) -> str | None:
        return donation.patient.code if donation.patient else None

    def get_provider(self, donation: Donation) -> str | None:
        payment = self._payment(donation)
        return payment.provider if payment else None

    def get_receipt_pdf_url(self, donation: Donation) -> str | None:
        return receipt_signed_url(donation=donation)

    def get_updated_at(self, donation: Donation) -> str:
        payment = self._payment(donation)
        return max(donation.updated_at, payment.updated_at if payment else donation.updated_at).isoformat()


def donation_status_body(donation: Donation) -> dict:
    payment = payment_latest_for_donation(donation_id=donation.pk)
    return dict(DonationStatusSerializer(donation, context={"payment": payment}).data)


class LiveVariants(PolymorphicProxySerializer):
    """A oneOf whose callable is asked again each time the schema is built: drf-spectacular's own keeps the
    first answer for the life of the process, so the variants would stay those of the settings of the first
    schema request (a provider left out while its settings were invalid, say) after they changed."""

    @property
    def serializers(self):
        return self._variants() if callable(self._variants) else self._variants

    @serializers.setter
    def serializers(self, value):
        self._variants = value


class LiveVariantsExtension(PolymorphicProxySerializerExtension):
    """drf-spectacular maps its proxy by exact class: the same mapping for LiveVariants."""

    target_class = "payments.api_schema.LiveVariants"


class DonationInputSerializer(serializers.Serializer):
    """The create request as the rules read it; documented as one variant per DonationShape (below)."""

    patient = serializers.CharField(
        allow_null=True, required=False, max_length=20, help_text="Patient code; null for the general fund"
    )
    amount = serializers.DecimalField(max_digits=12, decimal_places=2, coerce_to_string=True)
    currency = serializers.CharField(max_length=3)
    provider = serializers.ChoiceField(choices=[], help_text="A configured collection provider")
    channel = serializers.CharField(required=False, allow_blank=True, default="", max_length=20)
    phone_number = serializers.CharField(required=False, allow_blank=True, default="", max_length=32)
    email = serializers.EmailField(required=False, allow_blank=True, default="", max_length=254)
    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    anonymous = serializers.BooleanField(required=False, default=False)
    message = serializers.CharField(required=False, allow_blank=True, default="", max_length=1000)
    # Bank payments (AzamPay): the payer's bank and account, and the OTP the bank sent.
    bank = serializers.CharField(required=False, allow_blank=True, default="", max_length=20)
    account_number = serializers.CharField(required=False, allow_blank=True, default="", max_length=40)
    account_name = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    otp = serializers.CharField(required=False, allow_blank=True, default="", max_length=20)

    def get_fields(self):
        fields = super().get_fields()
        fields["provider"].choices = collection_provider_codes()  # the registry's, as configured now
        return fields

    def to_request(self) -> DonationRequest:
        data = self.validated_data
        return DonationRequest(
            amount=data["amount"],
            currency=data["currency"],
            provider=data["provider"],
            channel=data["channel"],
            phone_number=data["phone_number"],
            patient_code=data.get("patient") or None,
            name=data["name"],
            email=data["email"],
            anonymous=data["anonymous"],
            message=data["message"],
            extra={k: data[k] for k in EXTRA_FIELDS},
        )


# --- The donation request's schema: one variant per kind of request the rules accept ---------------------


def donation_request_variants() -> list[serializers.Serializer]:
    """The documented request body: a oneOf of DonationShapes (payments/services/donations.py), each with the
    enums, limits and phone pattern the checks enforce for it. Built when the schema is, from the registry and
    the settings of the moment."""
    return [_variant_serializer(shape)() for shape in donation_shapes()]


@functools.cache
def _variant_serializer(shape: DonationShape) -> type[serializers.Serializer]:
    group = shape.channels[0].capitalize() if len(shape.channels) == 1 else "Mobile" if shape.channels else ""
    name = f"Donation{shape.provider.capitalize()}{group}{shape.currency}"
    base = DonationInputSerializer._declared_fields
    fields = {k: copy.deepcopy(v) for k, v in base.items() if k not in EXTRA_FIELDS or k in shape.extra_fields}
    fields["patient"] = serializers.CharField(
        max_length=20,
        required=not shape.general_fund,
        allow_null=shape.general_fund,
        help_text=f"Code of a published patient raising funds in {shape.currency}"
        + ("; null or absent for the general fund" if shape.general_fund else ""),
    )
    fields["provider"] = serializers.ChoiceField(choices=[shape.provider])
    fields["currency"] = serializers.ChoiceField(choices=[shape.currency])
    fields["amount"] = DocumentedDecimalField(
        max_digits=12,
        decimal_places=2,
        help_text=f"{shape.currency} {shape.min_amount:,} to {shape.max_amount:,}"
        + (" (whole)" if shape.whole_amounts else "")
        + ", as a number or a decimal string",
        openapi_schema=amount_schema(shape.min_amount, shape.max_amount, whole=shape.whole_amounts),
    )
    if shape.channels:
        fields["channel"] = serializers.ChoiceField(
            choices=list(shape.channels), help_text="Matched ignoring case; aliases such as `m-pesa` are accepted"
        )
    phone = mobile_number_pattern(shape.phone_region)
    fields["phone_number"] = DocumentedCharField(
        required=shape.phone_required,
        allow_blank=not shape.phone_required,
        max_length=32,
        help_text=f"A mobile number of {shape.phone_region} (spaces and dashes are accepted too)"
        + ("" if shape.phone_required else "; optional"),
        openapi_schema={
            "type": "string",
            "maxLength": 32,
            "pattern": phone if shape.phone_required else f"^(?:{phone[1:-1]})?$",
        },
    )
    for field, choices in shape.extra_choices:
        fields[field] = serializers.ChoiceField(choices=list(choices), help_text="Matched ignoring case")
    inline_enum_components.add(name)
    return type(name, (serializers.Serializer,), fields)


EXTRA_FIELDS = ("bank", "account_number", "account_name", "otp")
