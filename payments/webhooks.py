"""Provider callback views: plain Django views, raw bytes first, no DRF parsing before the body is stored."""

import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from config.errors import error_response
from config.net import client_ip, rate_limit
from payments.providers import get_provider
from payments.services.callbacks import ACCEPTED, InboxUnavailable, callback_process, callback_record

logger = logging.getLogger("payments.webhooks")

ERROR_STATUSES = {400: "INVALID_FORMAT", 401: "AUTH_REQUIRED", 404: "NOT_FOUND"}


@method_decorator(csrf_exempt, name="dispatch")
class ProviderCallbackView(View):
    provider_code: str = ""
    kind: str = "payment"
    http_method_names = ["post", "put", "options"]

    def post(self, request: HttpRequest, token: str = "") -> JsonResponse:
        ip = client_ip(request)
        limit = rate_limit(
            scope=f"webhook:{self.provider_code}:{self.kind}", ident=ip, limit=settings.WEBHOOK_RATE_LIMIT_PER_MINUTE
        )
        if not limit.allowed:
            response = error_response(429, "Rate limit exceeded", retry_after=60)
            for name, value in limit.headers().items():
                response[name] = value
            return response
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > settings.CALLBACK_MAX_BODY_BYTES:
            return error_response(413, f"Callback bodies are limited to {settings.CALLBACK_MAX_BODY_BYTES} bytes.")
        body = request.body  # read once; everything below works on these bytes
        if len(body) > settings.CALLBACK_MAX_BODY_BYTES:
            return error_response(413, f"Callback bodies are limited to {settings.CALLBACK_MAX_BODY_BYTES} bytes.")
        try:
            event = callback_record(
                provider_code=self.provider_code,
                kind=self.kind,
                body=body,
                headers=request.headers,
                client_ip=ip,
                url_token=token,
            )
        except InboxUnavailable:
            return error_response(503, "We could not store the callback; please send it again.")
        outcome = callback_process(event=event, raw_body=body)
        if outcome.http_status >= 400:
            return error_response(outcome.http_status, outcome.message, ERROR_STATUSES.get(outcome.http_status))
        status, ack = get_provider(self.provider_code).ack(self.kind, outcome.code in (ACCEPTED, "duplicate"))
        return JsonResponse(ack, status=status)

    put = post  # MTN MoMo may deliver with PUT

    def http_method_not_allowed(self, request, *args, **kwargs):
        response = error_response(405, f"{request.method} is not allowed here; providers POST callbacks.")
        response["Allow"] = "POST, PUT"
        return response


class ProviderHealthView(View):
    provider_code: str = ""
    public_name: str = ""

    def get(self, request: HttpRequest) -> JsonResponse:
        from payments.selectors import provider_health

        limit = rate_limit(
            scope=f"health:{self.provider_code}", ident=client_ip(request), limit=settings.HEALTH_RATE_LIMIT_PER_MINUTE
        )
        if not limit.allowed:
            return error_response(429, "Rate limit exceeded", retry_after=60)
        return JsonResponse(provider_health(provider_code=self.provider_code, public_name=self.public_name))
