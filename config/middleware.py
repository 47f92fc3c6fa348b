"""Request ids, and the guarantee that API and webhook paths never answer with an HTML page."""

import json
import logging
import uuid

from django.http import HttpRequest, HttpResponse

from config.errors import error_response, is_json_path

logger = logging.getLogger("config.errors")


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.request_id = f"req_{uuid.uuid4().hex[:16]}"
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response


class JsonErrorMiddleware:
    """Turn unhandled exceptions and HTML error pages on JSON paths into docs/api.md's error shape."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not is_json_path(request.path) or response.status_code < 400:
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        message = _plain_message(response)
        replacement = error_response(response.status_code, message)
        for header in ("Allow", "Retry-After"):
            if header in response:
                replacement[header] = response[header]
        return replacement

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_json_path(request.path):
            return None
        request_id = getattr(request, "request_id", "")
        logger.exception(
            "Unhandled error %s on %s %s", request_id, request.method, request.path, extra={"request_id": request_id}
        )
        return error_response(
            500, "Something went wrong on our side. Quote the request id if you contact us.", request_id=request_id
        )


def _plain_message(response: HttpResponse) -> str:
    defaults = {
        403: "You are not allowed to do this.",
        404: "Nothing here. Check the path.",
        405: "This method is not allowed here.",
        413: "The request body is too large.",
        500: "Something went wrong on our side.",
    }
    try:
        payload = json.loads(response.content or b"{}")
        if isinstance(payload, dict) and payload.get("detail"):
            return str(payload["detail"])
    except (ValueError, UnicodeDecodeError):
        pass
    return defaults.get(response.status_code, "The request could not be handled.")
