"""The donor-facing payment API: create a donation and start its payment; read and refresh its status.

Each view: input serializer → services (payments.services.donations: the rules the portal shares) →
output serializer that renders the body.
"""

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import error_body
from config.net import client_ip, rate_limit
from config.schema import (
    error_response,
)
from config.throttles import RateLimited, rate_limit_headers
from donor.models import Donation
from donor.selectors import DONATION_SESSION_KEY, donation_for_reader
from payments.api_schema import (
    DonationInputSerializer,
    DonationStatusSerializer,
    LiveVariants,
    donation_request_variants,
    donation_status_body,
)
from payments.models import Payment
from payments.selectors import payment_latest_for_donation
from payments.services.donations import (
    CheckedDonation,
    DonationRefused,
    ProviderUnavailable,
    donation_check,
    donation_open,
    donation_pay,
    donation_prompt_admit,
)
from payments.services.idempotency import (
    IdempotencyConflict,
    IdempotencyInProgress,
    idempotent_call,
    record_key,
    request_fingerprint,
)
from payments.services.payments import PaymentStartFailed, payment_check_on_demand

PHONE_CONFIRMATION_MESSAGE = "Check your phone and enter your PIN to confirm the payment."
# The request to the provider timed out or was cut off after it left us: it may have reached the phone.
OUTCOME_UNKNOWN_MESSAGE = (
    "We are waiting for the provider to confirm your payment request. If your phone shows a prompt, enter "
    "your PIN; this donation's status updates by itself. Please do not pay again for this donation."
)
Answer = tuple[int, dict]
IDEMPOTENCY_KEY_MAX = 255


class DonationCreateApi(APIView):
    """Create a donation and prompt the payer. Guests and JWT donors alike."""

    InputSerializer = DonationInputSerializer  # the request as the rules read it (api_schema.py)

    class OutputSerializer(serializers.Serializer):
        class PaymentSerializer(serializers.Serializer):
            provider = serializers.CharField()
            channel = serializers.CharField()
            status = serializers.CharField()
            provider_reference = serializers.CharField(allow_null=True)

        class NextActionSerializer(serializers.Serializer):
            type = serializers.ChoiceField(choices=["await_phone_confirmation", "redirect"])
            message = serializers.CharField(required=False)
            url = serializers.URLField(required=False)

        id = serializers.IntegerField(source="donation.pk")
        reference = serializers.CharField(source="donation.reference")
        public_token = serializers.CharField(
            source="donation.public_token",
            help_text="The donation's public handle: `{reference}` of the status and refresh paths for anyone "
            "holding it (by `reference` those answer only the donor's own JWT or staff)",
        )
        status_url = serializers.CharField(help_text="The donor's live status page (carries public_token)")
        status = serializers.CharField(source="donation.status")
        amount = serializers.CharField(source="donation.amount")
        currency = serializers.CharField(source="donation.currency")
        patient = serializers.CharField(source="donation.patient.code", allow_null=True, default=None)
        payment = PaymentSerializer()
        next_action = NextActionSerializer()

    @extend_schema(
        request=LiveVariants(
            component_name="DonationRequest",
            serializers=lambda: donation_request_variants(),
            resource_type_field_name=None,
        ),
        responses={
            201: OutputSerializer,
            409: error_response("`IDEMPOTENCY_IN_PROGRESS`: a request with this `Idempotency-Key` is still running."),
            422: error_response("`IDEMPOTENCY_KEY_REUSED`: this `Idempotency-Key` came with another body or user."),
            429: error_response(
                "`RATE_LIMIT_EXCEEDED`: too many payment prompts this minute from this client "
                "(DONATE_RATE_LIMIT_PER_MINUTE) or to this phone (DONATE_PHONE_RATE_LIMIT_PER_MINUTE); nothing was "
                "created or sent. Wait `retry_after` seconds (`Retry-After`); the answer is not kept with an "
                "`Idempotency-Key`."
            ),
            502: error_response(
                "`PROVIDER_ERROR`: the provider refused the payment or could not be reached; the donation "
                "(`reference`) is kept as failed."
            ),
            503: error_response(
                "`SERVICE_UNAVAILABLE`: the chosen provider cannot be used here now (its settings on this site are "
                "invalid); nothing was created, try again later or with another provider."
            ),
        },
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                {"type": "string", "maxLength": IDEMPOTENCY_KEY_MAX},
                OpenApiParameter.HEADER,
                required=False,
                description="Same key and body → the first answer, and no second charge; another body → 422",
            )
        ],
    )
    def post(self, request) -> Response:
        try:
            return self._post(request)
        except RateLimited as limited:  # raised before anything was created; never kept with an Idempotency-Key
            body = error_body(
                429, str(limited.message), retry_after=int(rate_limit_headers(limited.state)["Retry-After"])
            )
            return Response(body, status=429, headers=rate_limit_headers(limited.state))

    def _post(self, request) -> Response:
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key:
            status, body = self._create(request)
            return Response(body, status=status)
        if len(key) > IDEMPOTENCY_KEY_MAX:
            message = f"Idempotency-Key must be at most {IDEMPOTENCY_KEY_MAX} characters."
            return Response(error_body(400, message), status=400)
        user_scope = request.user.pk if request.user.is_authenticated else "guest"
        fingerprint = request_fingerprint({"user": user_scope, "body": request.data})
        try:
            status, body = idempotent_call(
                key=record_key("donation", key),
                fingerprint=fingerprint,
                call=lambda progress: self._create(request, progress),
                resume=lambda reference: self._resume(request, reference),
            )
        except IdempotencyConflict:
            message = (
                "This Idempotency-Key was already used with a different request body. Use a new key for a new donation."
            )
            return Response(error_body(422, message, "IDEMPOTENCY_KEY_REUSED"), status=422)
        except IdempotencyInProgress:
            message = "A request with this Idempotency-Key is still being processed; retry shortly."
            return Response(error_body(409, message, "IDEMPOTENCY_IN_PROGRESS"), status=409)
        return Response(body, status=status)

    def _checked(self, request) -> CheckedDonation | Answer:
        """The request checked by the serializer and the donation rules, or the answer refusing it: 400, or
        503 when the chosen provider's settings are invalid here (an operator's fix; nothing is created)."""
        serializer = self.InputSerializer(data=request.data)
        if not serializer.is_valid():
            return 400, error_body(400, _first_error(serializer.errors), "VALIDATION_ERROR", errors=serializer.errors)
        try:
            return donation_check(serializer.to_request())
        except DonationRefused as refused:
            return 400, _validation_error(refused.errors)
        except ProviderUnavailable as unavailable:
            return 503, error_body(503, unavailable.message, "SERVICE_UNAVAILABLE")

    def _create(self, request, progress=None) -> Answer:
        """Check, open the donation, start the payment. Returns (status, body) so it can be replayed."""
        checked = self._checked(request)
        if isinstance(checked, tuple):
            return checked
        donation_prompt_admit(checked, client=client_ip(request))
        try:
            donation = donation_open(checked, user=request.user)
        except DonationRefused as refused:
            return 400, _validation_error(refused.errors)
        if progress is not None:
            progress(donation.reference)
        return self._pay(donation, checked)

    def _resume(self, request, reference: str) -> Answer:
        """A retry of a request that died after creating its donation: answer for that donation, never a
        second one; start its payment only if none was ever started (the provider was never asked)."""
        donation = Donation.objects.get(reference=reference)
        payment = payment_latest_for_donation(donation_id=donation.pk)
        if payment is None:
            checked = self._checked(request)  # the same body as the first request (same fingerprint)
            if isinstance(checked, tuple):
                return checked
            donation_prompt_admit(checked, client=client_ip(request))
            return self._pay(donation, checked)
        if payment.status == Payment.Status.FAILED and donation.status == Donation.Status.FAILED:
            message = payment.failure_reason or "The provider refused the payment."
            return 502, error_body(502, message, "PROVIDER_ERROR", reference=donation.reference)
        return 201, _created_body(donation, payment)

    def _pay(self, donation: Donation, checked: CheckedDonation) -> Answer:
        try:
            payment = donation_pay(donation, checked)
        except PaymentStartFailed as failure:
            return 502, error_body(502, failure.error.message, "PROVIDER_ERROR", reference=donation.reference)
        donation.refresh_from_db()
        return 201, _created_body(donation, payment)


def status_page_url(donation: Donation) -> str:
    """The donor's link to the donation: the portal's status page by its public token."""
    return settings.SITE_URL + reverse("donation-status-page", kwargs={"reference": donation.public_token})


def _donation_for(request, handle: str) -> Donation | None:
    """The donation this request may read by `handle` (the public token, or the reference for its donor and
    staff). The donor is the JWT's user, else the portal's signed-in user or the browser that made it."""
    user = request.user if request.user.is_authenticated else getattr(request._request, "user", None)
    session = getattr(request._request, "session", None)
    remembered = session.get(DONATION_SESSION_KEY, {}) if session is not None else {}
    return donation_for_reader(handle=handle, user=user, session_references=remembered)


def _created_body(donation: Donation, payment: Payment) -> dict:
    if payment.checkout_url:
        next_action = {"type": "redirect", "url": payment.checkout_url}
    elif getattr(payment, "start_outcome_unknown", False):
        next_action = {"type": "await_phone_confirmation", "message": OUTCOME_UNKNOWN_MESSAGE}
    else:
        next_action = {"type": "await_phone_confirmation", "message": PHONE_CONFIRMATION_MESSAGE}
    rendered = DonationCreateApi.OutputSerializer(
        {"donation": donation, "payment": payment, "next_action": next_action, "status_url": status_page_url(donation)}
    )
    return dict(rendered.data)


NOT_FOUND_MESSAGE = "No such donation. Use the link you were given (its public token), or sign in as its donor."
HANDLE_PARAMETER = OpenApiParameter(
    "reference",
    str,
    OpenApiParameter.PATH,
    description="The donation's `public_token` (anyone holding it), or its `reference` (only with the donor's JWT "
    "or a staff user's; anyone else gets 404)",
)


class DonationStatusApi(APIView):
    """The status of one donation, from our database. Its handle is the public token; the guessable reference
    works only for its donor (JWT, or the portal's session) and staff, and is a 404 for anyone else."""

    @extend_schema(responses=DonationStatusSerializer, parameters=[HANDLE_PARAMETER])
    def get(self, request, reference: str) -> Response:
        donation = _donation_for(request, reference)
        if donation is None:
            return Response(error_body(404, NOT_FOUND_MESSAGE), status=404)
        return Response(donation_status_body(donation))


class DonationRefreshApi(APIView):
    """Ask the provider now (sandbox callbacks are unreliable) and answer the fresh status.

    Throttled twice: per client (REFRESH_RATE_LIMIT_PER_MINUTE, then 429) and per donation (the provider is
    asked at most once per REFRESH_MIN_INTERVAL_SECONDS; a refresh in between answers what we know). An
    on-demand check never moves the payment's scheduled reconciliation later.
    """

    @extend_schema(
        request=None,
        parameters=[HANDLE_PARAMETER],
        responses={
            200: DonationStatusSerializer,
            429: error_response("`RATE_LIMIT_EXCEEDED`: over REFRESH_RATE_LIMIT_PER_MINUTE; wait `retry_after`."),
        },
    )
    def post(self, request, reference: str) -> Response:
        limit = rate_limit(
            scope="donation-refresh", ident=client_ip(request), limit=settings.REFRESH_RATE_LIMIT_PER_MINUTE
        )
        if not limit.allowed:
            headers = rate_limit_headers(limit)
            body = error_body(429, "Rate limit exceeded", retry_after=int(headers["Retry-After"]))
            return Response(body, status=429, headers=headers)
        donation = _donation_for(request, reference)
        if donation is None:
            return Response(error_body(404, NOT_FOUND_MESSAGE), status=404)
        payment = payment_latest_for_donation(donation_id=donation.pk)
        if payment is not None and payment_check_on_demand(payment=payment):
            donation.refresh_from_db()
        return Response(donation_status_body(donation))


def _validation_error(errors: dict[str, str]) -> dict:
    return error_body(400, _first_error(errors), "VALIDATION_ERROR", errors={k: [v] for k, v in errors.items()})


def _first_error(errors: dict) -> str:
    for field, value in errors.items():
        text = value[0] if isinstance(value, list) and value else value
        return f"{field}: {text}"
    return "Invalid input."
