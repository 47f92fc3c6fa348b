"""The donor-facing payment API: create a donation and start its payment; read and refresh its status."""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import error_body
from config.net import client_ip, rate_limit
from donor.models import Donation
from donor.phone_numbers import InvalidPhoneNumber, normalize_msisdn, region_for_currency
from donor.selectors import donation_get
from donor.services import donation_create, donor_for_guest, donor_for_user
from patients.selectors import patient_get_published
from payments.providers import PROVIDER_CLASSES, get_provider, provider_codes
from payments.providers.azampay import BANK_CHANNEL, CARD_CHANNEL, normalize_channel
from payments.selectors import payment_latest_for_donation
from payments.services.idempotency import (
    IdempotencyConflict,
    IdempotencyInProgress,
    idempotent_call,
    request_fingerprint,
)
from payments.services.payments import PaymentStartFailed, payment_confirm, payment_start

PHONE_CONFIRMATION_MESSAGE = "Check your phone and enter your PIN to confirm the payment."
# The request to the provider timed out or was cut off after it left us: it may have reached the phone.
OUTCOME_UNKNOWN_MESSAGE = (
    "We are waiting for the provider to confirm your payment request. If your phone shows a prompt, enter "
    "your PIN; this donation's status updates by itself. Please do not pay again for this donation."
)


class DonationStatusSerializer(serializers.Serializer):
    reference = serializers.CharField()
    status = serializers.CharField()
    status_reason = serializers.CharField()
    transactionId = serializers.CharField(allow_null=True)
    receipt = serializers.CharField()
    amount = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    patient = serializers.CharField(allow_null=True)
    provider = serializers.CharField(allow_null=True)
    updated_at = serializers.DateTimeField()


def donation_status_body(donation: Donation) -> dict:
    payment = payment_latest_for_donation(donation_id=donation.pk)
    return {
        "reference": donation.reference,
        "status": donation.status,
        "status_reason": donation.status_reason,
        "transactionId": payment.provider_reference if payment else None,
        "receipt": payment.receipt if payment else "",
        "amount": str(donation.amount),
        "currency": donation.currency,
        "patient": donation.patient.code if donation.patient else None,
        "provider": payment.provider if payment else None,
        "updated_at": max(donation.updated_at, payment.updated_at if payment else donation.updated_at).isoformat(),
    }


class DonationCreateApi(APIView):
    """Create a donation and prompt the payer. Guests and JWT donors alike."""

    class DonationCreateInputSerializer(serializers.Serializer):
        patient = serializers.CharField(
            allow_null=True, required=False, max_length=20, help_text="Patient code; null for the general fund"
        )
        amount = serializers.DecimalField(max_digits=12, decimal_places=2, coerce_to_string=True)
        currency = serializers.CharField(max_length=3)
        provider = serializers.ChoiceField(choices=sorted(PROVIDER_CLASSES))
        channel = serializers.CharField(required=False, allow_blank=True, default="", max_length=20)
        phone_number = serializers.CharField(required=False, allow_blank=True, default="", max_length=32)
        email = serializers.EmailField(required=False, allow_blank=True, default="")
        name = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
        anonymous = serializers.BooleanField(required=False, default=False)
        message = serializers.CharField(required=False, allow_blank=True, default="", max_length=1000)

    class PaymentSerializer(serializers.Serializer):
        provider = serializers.CharField()
        channel = serializers.CharField()
        status = serializers.CharField()
        provider_reference = serializers.CharField(allow_null=True)

    class NextActionSerializer(serializers.Serializer):
        type = serializers.ChoiceField(choices=["await_phone_confirmation", "redirect"])
        message = serializers.CharField(required=False)
        url = serializers.URLField(required=False)

    class DonationCreateOutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        reference = serializers.CharField()
        status = serializers.CharField()
        amount = serializers.CharField()
        currency = serializers.CharField()
        patient = serializers.CharField(allow_null=True)
        payment = serializers.DictField()
        next_action = serializers.DictField()

    @extend_schema(
        request=DonationCreateInputSerializer,
        responses={201: DonationCreateOutputSerializer},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="Same key and body → the first answer, and no second charge",
            )
        ],
    )
    def post(self, request) -> Response:
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key:
            status, body = self._create(request)
            return Response(body, status=status)
        if len(key) > 255:
            return Response(error_body(400, "Idempotency-Key must be at most 255 characters."), status=400)
        user_scope = request.user.pk if request.user.is_authenticated else "guest"
        fingerprint = request_fingerprint({"user": user_scope, "body": request.data})
        try:
            status, body = idempotent_call(
                key=f"donation:{key}",
                fingerprint=fingerprint,
                call=lambda progress: self._create(request, progress),
                resume=lambda reference: self._resume(request, reference),
            )
        except IdempotencyConflict:
            return Response(
                error_body(
                    422,
                    "This Idempotency-Key was already used with a different request body. "
                    "Use a new key for a new donation.",
                    "IDEMPOTENCY_KEY_REUSED",
                ),
                status=422,
            )
        except IdempotencyInProgress:
            return Response(
                error_body(
                    409,
                    "A request with this Idempotency-Key is still being processed; retry shortly.",
                    "IDEMPOTENCY_IN_PROGRESS",
                ),
                status=409,
            )
        return Response(body, status=status)

    def _create(self, request, progress=None) -> tuple[int, dict]:
        """Validate, create the donation, start the payment. Returns (status, body) so it can be replayed."""
        checked = self._validate(request)
        if isinstance(checked, dict):
            return 400, checked
        try:
            with transaction.atomic():  # a refused donation leaves no orphan guest donor behind
                donor = (
                    donor_for_user(user=request.user)
                    if request.user.is_authenticated
                    else donor_for_guest(name=checked.data["name"], email=checked.data["email"], phone=checked.msisdn)
                )
                donation = donation_create(
                    patient=checked.patient,
                    amount=checked.data["amount"],
                    currency=checked.data["currency"],
                    donor=donor,
                    anonymous=checked.data["anonymous"],
                    message=checked.data["message"],
                )
        except ValidationError as exc:
            return 400, _validation_error({k: " ".join(v) for k, v in exc.message_dict.items()})
        if progress is not None:
            progress(donation.reference)
        return self._start(request, donation, checked)

    def _resume(self, request, reference: str) -> tuple[int, dict]:
        """A retry of a request that died after creating its donation: answer for that donation, never a
        second one; start its payment only if none was ever started (the provider was never asked)."""
        donation = Donation.objects.get(reference=reference)
        payment = payment_latest_for_donation(donation_id=donation.pk)
        if payment is None:
            checked = self._validate(request)  # the same body as the first request (same fingerprint)
            if isinstance(checked, dict):
                return 400, checked
            return self._start(request, donation, checked)
        if payment.status == payment.Status.FAILED and donation.status == Donation.Status.FAILED:
            body = error_body(502, payment.failure_reason or "The provider refused the payment.", "PROVIDER_ERROR")
            return 502, body | {"reference": donation.reference}
        return 201, _created_body(donation, payment)

    def _validate(self, request) -> "CheckedDonation | dict":
        """The request checked against the serializer and the provider's rules, or a 400 body."""
        serializer = self.DonationCreateInputSerializer(data=request.data)
        if not serializer.is_valid():
            return error_body(400, _first_error(serializer.errors), "VALIDATION_ERROR", errors=serializer.errors)
        data = serializer.validated_data
        errors: dict[str, str] = {}
        patient = None
        if data.get("patient"):
            patient = patient_get_published(code=data["patient"])
            if patient is None:
                errors["patient"] = f"No published patient with code {data['patient']}."
        provider_code = data["provider"]
        if provider_code not in provider_codes():
            errors["provider"] = f"{provider_code} is not available here."
        channel = data["channel"]
        needs_phone = True
        if provider_code == "azampay":
            channel = normalize_channel(channel)
            if not channel:
                errors["channel"] = "Choose Mpesa, Airtel, Tigo, Halopesa, Azampesa, card or bank."
            needs_phone = channel != CARD_CHANNEL
        msisdn = ""
        if needs_phone or data["phone_number"]:
            try:
                msisdn = normalize_msisdn(data["phone_number"], region=region_for_currency(data["currency"]))
            except InvalidPhoneNumber as exc:
                errors["phone_number"] = str(exc)
        if provider_code in provider_codes():
            currencies = get_provider(provider_code).currencies
            if get_provider(provider_code).whole_amounts_only and data["amount"] != data["amount"].to_integral_value():
                errors["amount"] = f"{provider_code} takes whole {data['currency'].upper()} amounts only."
            if data["currency"].upper() not in currencies:
                errors["currency"] = f"{provider_code} collects {', '.join(sorted(currencies))} only."
        if errors:
            return _validation_error(errors)
        return CheckedDonation(data=data, patient=patient, provider_code=provider_code, channel=channel, msisdn=msisdn)

    def _start(self, request, donation: Donation, checked: "CheckedDonation") -> tuple[int, dict]:
        extra = {}
        if checked.channel == BANK_CHANNEL:
            extra = {k: str(request.data.get(k, "")) for k in ("bank", "account_number", "account_name", "otp")}
        try:
            payment = payment_start(
                donation=donation,
                provider_code=checked.provider_code,
                channel=checked.channel,
                msisdn=checked.msisdn,
                extra=extra,
            )
        except PaymentStartFailed as failure:
            body = error_body(502, failure.error.message, "PROVIDER_ERROR", reference=donation.reference)
            return 502, body
        donation.refresh_from_db()
        return 201, _created_body(donation, payment)


@dataclass(frozen=True)
class CheckedDonation:
    data: dict
    patient: object
    provider_code: str
    channel: str
    msisdn: str


def _created_body(donation: Donation, payment) -> dict:
    if payment.checkout_url:
        next_action = {"type": "redirect", "url": payment.checkout_url}
    elif getattr(payment, "start_outcome_unknown", False):
        next_action = {"type": "await_phone_confirmation", "message": OUTCOME_UNKNOWN_MESSAGE}
    else:
        next_action = {"type": "await_phone_confirmation", "message": PHONE_CONFIRMATION_MESSAGE}
    return {
        "id": donation.pk,
        "reference": donation.reference,
        "status": donation.status,
        "amount": str(donation.amount),
        "currency": donation.currency,
        "patient": donation.patient.code if donation.patient else None,
        "payment": {
            "provider": payment.provider,
            "channel": payment.channel,
            "status": payment.status,
            "provider_reference": payment.provider_reference,
        },
        "next_action": next_action,
    }


class DonationStatusApi(APIView):
    authentication_classes: list = []

    @extend_schema(responses=DonationStatusSerializer)
    def get(self, request, reference: str) -> Response:
        donation = donation_get(reference=reference)
        if donation is None:
            return Response(error_body(404, f"No donation with reference {reference}."), status=404)
        return Response(donation_status_body(donation))


class DonationRefreshApi(APIView):
    """Ask the provider now (sandbox callbacks are unreliable) and answer the fresh status.

    Throttled twice: per client (REFRESH_RATE_LIMIT_PER_MINUTE, then 429) and per donation (the provider is
    asked at most once per REFRESH_MIN_INTERVAL_SECONDS; a refresh in between answers what we know). An
    on-demand check never moves the payment's scheduled reconciliation later.
    """

    authentication_classes: list = []

    @extend_schema(request=None, responses=DonationStatusSerializer)
    def post(self, request, reference: str) -> Response:
        limit = rate_limit(
            scope="donation-refresh", ident=client_ip(request), limit=settings.REFRESH_RATE_LIMIT_PER_MINUTE
        )
        if not limit.allowed:
            response = Response(error_body(429, "Rate limit exceeded", retry_after=60), status=429)
            for name, value in limit.headers().items():
                response[name] = value
            return response
        donation = donation_get(reference=reference)
        if donation is None:
            return Response(error_body(404, f"No donation with reference {reference}."), status=404)
        payment = payment_latest_for_donation(donation_id=donation.pk)
        if payment is not None and not payment.is_terminal and _may_ask_now(payment):
            payment_confirm(payment_id=payment.pk, on_demand=True)
            donation.refresh_from_db()
        return Response(donation_status_body(donation))


def _may_ask_now(payment) -> bool:
    if payment.last_checked_at is None:
        return True
    return timezone.now() - payment.last_checked_at >= timedelta(seconds=settings.REFRESH_MIN_INTERVAL_SECONDS)


def _validation_error(errors: dict[str, str]) -> dict:
    return error_body(400, _first_error(errors), "VALIDATION_ERROR", errors={k: [v] for k, v in errors.items()})


def _first_error(errors: dict) -> str:
    for field, value in errors.items():
        text = value[0] if isinstance(value, list) and value else value
        return f"{field}: {text}"
    return "Invalid input."
