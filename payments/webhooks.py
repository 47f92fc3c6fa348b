"""Provider callback views: plain Django views, raw bytes stored first, no DRF parsing before that.

One view serves every provider and kind: size checks → rate-limit decision → store the raw delivery (its own
commit; database down → 503 so the provider sends it again; a forged or throttled one nobody could use only as a
fixed-size record) → over the limit: 429, a stored delivery waits for the sweeper or the provider's resend →
forged on its bytes: 401 → the kind's handler, now or (CALLBACK_ACK=stored) in a task worker → the provider's
own acknowledgement.
"""

import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from config.errors import error_response
from config.net import client_ip, rate_limit
from payments.providers.registry import get_provider, provider_usable
from payments.selectors import provider_health
from payments.services.dispatch import callback_accept
from payments.services.inbox import ACCEPTED, InboxUnavailable, callback_record

logger = logging.getLogger("payments.webhooks")

ERROR_CODES = {400: "INVALID_FORMAT", 401: "AUTH_REQUIRED", 404: "NOT_FOUND", 503: "SERVICE_UNAVAILABLE"}


@method_decorator(csrf_exempt, name="dispatch")
class ProviderCallbackView(View):
    provider_code: str = ""
    kind: str = "payment"
    http_method_names = ["post", "put", "options"]  # MTN MoMo may deliver with PUT
    # No cookie, user or form on a callback: config.middleware.ProviderCallbackMiddleware sends it straight here.
    skip_browser_middleware = True

    def post(self, request: HttpRequest, token: str = "") -> JsonResponse:
        if self.provider_code not in settings.PAYMENT_PROVIDERS:  # a rail this site does not offer (PAYMENT_RAILS)
            return error_response(404, f"{self.provider_code} payments are not enabled on this site.")
        if not provider_usable(self.provider_code):  # its settings are invalid (payments.E002…): not stored
            return error_response(503, "This provider's settings are being fixed on our side; please send it again.")
        too_big = _size_problem(request)
        if too_big is not None:
            return too_big
        body = request.body  # read once; everything below works on these bytes
        if len(body) > settings.CALLBACK_MAX_BODY_BYTES:
            return error_response(413, f"Callback bodies are limited to {settings.CALLBACK_MAX_BODY_BYTES} bytes.")
        ip = client_ip(request)
        # The limit is decided before the delivery is stored, so that a throttled one that nobody could use is
        # kept only as a fixed-size record (callback_record); one that is authentic, undecidable or may report
        # money is stored in full and finished by the sweeper or the provider's resend, never lost.
        limit = rate_limit(
            scope=f"webhook:{self.provider_code}:{self.kind}", ident=ip, limit=settings.WEBHOOK_RATE_LIMIT_PER_MINUTE
        )
        try:
            event = callback_record(
                provider_code=self.provider_code,
                kind=self.kind,
                body=body,
                headers=request.headers,
                client_ip=ip,
                url_token=token,
                over_limit=not limit.allowed,
            )
        except InboxUnavailable:
            return error_response(503, "We could not store the callback; please send it again.")
        if not limit.allowed:
            logger.warning("Callback %s from %s over the rate limit: processing deferred", event.pk or "-", ip)
            response = error_response(429, "Rate limit exceeded", retry_after=60)
            for name, value in limit.headers().items():
                response[name] = value
            return response
        if not event.body_kept:  # judged forged on its bytes: refused now, nothing to hand to a handler
            return error_response(401, "Callback authentication failed.", ERROR_CODES[401])
        outcome = callback_accept(event=event, raw_body=body)
        if not outcome.acknowledged:
            return error_response(outcome.http_status, outcome.message, ERROR_CODES.get(outcome.http_status))
        if outcome.ack is not None:
            return JsonResponse(dict(outcome.ack), status=outcome.http_status)
        status, ack = get_provider(self.provider_code).ack(self.kind, outcome.code in (ACCEPTED, "duplicate"))
        return JsonResponse(ack, status=status)

    put = post

    def http_method_not_allowed(self, request, *args, **kwargs):
        allowed = ", ".join(m.upper() for m in self.http_method_names if m != "options")
        response = error_response(405, f"{request.method} is not allowed here; providers send callbacks by {allowed}.")
        response["Allow"] = allowed
        return response


def _size_problem(request: HttpRequest) -> JsonResponse | None:
    declared = request.headers.get("content-length") or "0"
    try:
        length = int(declared)
    except ValueError:
        return error_response(400, f"Content-Length {declared[:40]!r} is not a number of bytes.")
    if length < 0:
        return error_response(400, "Content-Length must not be negative.")
    if length > settings.CALLBACK_MAX_BODY_BYTES:
        return error_response(413, f"Callback bodies are limited to {settings.CALLBACK_MAX_BODY_BYTES} bytes.")
    return None


class ProviderHealthView(View):
    provider_code: str = ""
    public_name: str = ""

    def get(self, request: HttpRequest) -> JsonResponse:
        if self.provider_code not in settings.PAYMENT_PROVIDERS:
            return error_response(404, f"{self.provider_code} payments are not enabled on this site.")
        limit = rate_limit(
            scope=f"health:{self.provider_code}", ident=client_ip(request), limit=settings.HEALTH_RATE_LIMIT_PER_MINUTE
        )
        if not limit.allowed:
            return error_response(429, "Rate limit exceeded", retry_after=60)
        return JsonResponse(provider_health(provider_code=self.provider_code, public_name=self.public_name))
