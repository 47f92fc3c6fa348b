"""Request ids, a short middleware path for provider callbacks, and the guarantee that API and webhook paths
never answer with an HTML page."""

import json
import logging
import uuid

from django.conf import settings
from django.core.exceptions import DisallowedHost, RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import Resolver404, get_resolver
from django.utils import translation

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


class ProviderCallbackMiddleware:
    """Send provider callbacks straight to their view, past the middleware written for browsers.

    A callback carries no cookie, no user and no form: sessions, CSRF (the views are exempt), authentication,
    the second factor, messages, the staff idle timeout, frame options and the login lockout have nothing to do
    on it, yet each costs Python time on the hot path. A view opts in with `skip_browser_middleware = True`
    (payments.webhooks.ProviderCallbackView). What the skipped stack would still have given a callback is done
    here: the Host header checked against ALLOWED_HOSTS (CommonMiddleware), unhandled errors answered in the
    JSON error shape (JsonErrorMiddleware). Sits after RequestIdMiddleware and SecurityMiddleware, which every
    request keeps, and WhiteNoise, which answers only GET/HEAD of static files. Everything else resolves as usual
    (one extra URL resolution only for POST/PUT on JSON paths that are not callbacks).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = self._callback_view(request)
        if view is None:
            return self.get_response(request)
        try:
            request.get_host()
        except DisallowedHost:
            return error_response(400, "The Host header is not one this site answers to.")
        try:
            response = view.func(request, *view.args, **view.kwargs)
        except Exception as exception:  # the same answer the full stack gives: logged, JSON 500
            return json_server_error(request, exception)
        return response

    @staticmethod
    def _callback_view(request: HttpRequest):
        if request.method not in ("POST", "PUT") or not is_json_path(request.path_info):
            return None
        try:
            match = get_resolver().resolve(request.path_info)
        except Resolver404:
            return None
        if not getattr(getattr(match.func, "view_class", None), "skip_browser_middleware", False):
            return None
        request.resolver_match = match
        return match


def json_server_error(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Log an unhandled error with the request id and answer it in the JSON error shape (never a traceback)."""
    request_id = getattr(request, "request_id", "")
    logger.error(
        "Unhandled error %s on %s %s",
        request_id,
        request.method,
        request.path,
        exc_info=exception,
        extra={"request_id": request_id},
    )
    return error_response(
        500, "Something went wrong on our side. Quote the request id if you contact us.", request_id=request_id
    )


class BodySizeLimitMiddleware:
    """A body over DATA_UPLOAD_MAX_MEMORY_SIZE is a 413, not a 500 with a traceback (API) or a bare 400 (portal).

    Django refuses such a body only when something reads it, by raising RequestDataTooBig: inside a DRF view that
    escaped as a 500 and a traceback per request, in the portal (CSRF reads the form) as a 400 with a traceback
    in the security log. Here the declared Content-Length is compared before anything reads the body, and the
    answer is one warning line and a 413 in the JSON error shape on API paths, a short page elsewhere. Multipart
    bodies outside the API are left to Django (its limit leaves uploaded files out, an admin photo may be bigger);
    a RequestDataTooBig raised later anyway still ends as a 413 (`payload_too_large`, from handler400, the DRF
    exception handler and JsonErrorMiddleware). Provider callbacks never get here: ProviderCallbackMiddleware
    answers them first and they keep their own limit (CALLBACK_MAX_BODY_BYTES).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and _declared_length(request) > limit and not _left_to_django(request):
            return payload_too_large(request)
        return self.get_response(request)


def _declared_length(request: HttpRequest) -> int:
    try:
        return int(request.headers.get("content-length") or 0)
    except ValueError:
        return 0  # Django answers a malformed Content-Length itself


def _left_to_django(request: HttpRequest) -> bool:
    multipart = request.headers.get("content-type", "").startswith("multipart/")
    return multipart and not is_json_path(request.path_info)


def payload_too_large(request: HttpRequest) -> HttpResponse:
    """The 413 answer: JSON on API paths, the portal's page elsewhere, and one warning line (no traceback)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0
    logger.warning(
        "Request body too large on %s %s: %s bytes declared, the limit is %s",
        request.method,
        request.path,
        request.headers.get("content-length") or "unknown",
        limit,
    )
    if is_json_path(request.path):
        response: HttpResponse = error_response(413, f"The request body is too large: at most {limit} bytes.")
    else:
        # Answered before LocaleMiddleware has run: the page takes the request's language itself.
        with translation.override(translation.get_language_from_request(request)):
            response = render(request, "413.html", {"limit_kib": limit // 1024}, status=413)
    response._has_been_logged = True  # type: ignore[attr-defined]  # the line above; not django.request's too
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
        if isinstance(exception, RequestDataTooBig):  # read without a Content-Length (chunked): still a 413
            return payload_too_large(request)
        return json_server_error(request, exception)


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
