"""The SMS gateway's delivery reports, at a secret URL (the token is SMS_DELIVERY_REPORT_TOKEN)."""

import hmac
import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from config.errors import error_response
from donor.sms import sms_delivery_report
from integrations.sms import sms_gateway

logger = logging.getLogger("payments.sms")
MAX_BODY_BYTES = 8 * 1024  # a report is a handful of form fields


@method_decorator(csrf_exempt, name="dispatch")
class SmsDeliveryReportView(View):
    http_method_names = ["post"]
    skip_browser_middleware = True  # no cookie, user or form token on a gateway's POST (config.middleware)

    def post(self, request: HttpRequest, token: str) -> JsonResponse:
        secret = settings.SMS_DELIVERY_REPORT_TOKEN
        # Unset or wrong: the same 404 as any unknown path, so the URL's secret cannot be probed.
        if not secret or not hmac.compare_digest(token.encode(), secret.encode()):
            return error_response(404, "Not found.")
        gateway = sms_gateway()
        if gateway is None:
            return error_response(404, "SMS is not enabled on this site.")
        if len(request.body) > MAX_BODY_BYTES:
            return error_response(413, f"Delivery reports are limited to {MAX_BODY_BYTES} bytes.")
        report = gateway.parse_delivery_report({k: v for k, v in request.POST.items()})
        if report is None:
            return error_response(400, "Not a delivery report: id and a known status are required.")
        known = sms_delivery_report(report)
        if not known:  # not ours (or sent before we kept ids): acknowledged, so the gateway stops resending
            logger.info("SMS delivery report for unknown message %s", report.message_id)
        return JsonResponse({"ok": True, "known": known})
