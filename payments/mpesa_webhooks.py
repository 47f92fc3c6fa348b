"""M-Pesa C2B paybill (validation, confirmation) and B2C payout (result, timeout) callbacks.

Plain Django views, raw bytes stored in the inbox first. STK callbacks use the generic ProviderCallbackView;
C2B and B2C are different in kind (no Payment row is waiting for them), so they have their own small views.
"""

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from config.errors import error_response
from config.net import client_ip, rate_limit
from payments.providers import get_provider
from payments.providers.mpesa import B2C_RESULT, C2B_CONFIRMATION, C2B_VALIDATION
from payments.services.c2b import c2b_confirm, c2b_validate
from payments.services.callbacks import InboxUnavailable, callback_record
from payments.services.payouts import payout_callback

HANDLERS = {C2B_VALIDATION: c2b_validate, C2B_CONFIRMATION: c2b_confirm}


@method_decorator(csrf_exempt, name="dispatch")
class MpesaC2BView(View):
    kind: str = C2B_CONFIRMATION
    http_method_names = ["post", "options"]

    def post(self, request: HttpRequest, token: str = "") -> JsonResponse:
        ip = client_ip(request)
        limit = rate_limit(scope=f"webhook:mpesa:{self.kind}", ident=ip, limit=settings.WEBHOOK_RATE_LIMIT_PER_MINUTE)
        if not limit.allowed:
            response = error_response(429, "Rate limit exceeded", retry_after=60)
            for name, value in limit.headers().items():
                response[name] = value
            return response
        if int(request.META.get("CONTENT_LENGTH") or 0) > settings.CALLBACK_MAX_BODY_BYTES:
            return error_response(413, f"Callback bodies are limited to {settings.CALLBACK_MAX_BODY_BYTES} bytes.")
        body = request.body
        try:
            event = callback_record(
                provider_code="mpesa", kind=self.kind, body=body, headers=request.headers, client_ip=ip, url_token=token
            )
        except InboxUnavailable:
            return error_response(503, "We could not store the callback; please send it again.")
        status, answer, code, message = self.handle(event, token, body)
        if status >= 400:
            return error_response(status, message, code)
        return JsonResponse(answer, status=status)

    def handle(self, event, token: str, body: bytes) -> tuple[int, dict, str, str]:
        answer = HANDLERS[self.kind](event=event, provider=get_provider("mpesa"), url_token=token, body=body)
        return answer.http_status, answer.body, answer.code, answer.message

    def http_method_not_allowed(self, request, *args, **kwargs):
        response = error_response(405, f"{request.method} is not allowed here; M-Pesa POSTs callbacks.")
        response["Allow"] = "POST"
        return response


class MpesaB2CView(MpesaC2BView):
    kind: str = B2C_RESULT

    def handle(self, event, token: str, body: bytes) -> tuple[int, dict, str, str]:
        status, answer, code = payout_callback(event=event, url_token=token, body=body)
        return status, answer, code, answer.get("message", "")
