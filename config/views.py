"""Error pages: JSON on API paths, friendly HTML elsewhere."""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.defaults import bad_request

from config.errors import error_response, is_json_path
from config.middleware import payload_too_large


def handler400_view(request: HttpRequest, exception=None) -> HttpResponse:
    """Django answers a body over DATA_UPLOAD_MAX_MEMORY_SIZE that something read (a multipart form, a chunked
    body) with a 400: it is a 413. Other bad requests keep Django's answer (JSON on API paths, by the
    middleware)."""
    if isinstance(exception, RequestDataTooBig):
        return payload_too_large(request)
    return bad_request(request, exception)


def handler404_view(request: HttpRequest, exception=None) -> HttpResponse:
    if is_json_path(request.path):
        return error_response(404, f"Nothing at {request.path}. Check the path and the API docs at /api/docs/.")
    return render(request, "404.html", status=404)


def handler500_view(request: HttpRequest) -> HttpResponse:
    if is_json_path(request.path):
        return error_response(500, "Something went wrong on our side.", request_id=getattr(request, "request_id", ""))
    return render(request, "500.html", {"request_id": getattr(request, "request_id", "")}, status=500)


def docs_csp() -> dict:
    """The site's CSP with the origin the Swagger UI's files come from (drf-spectacular's SWAGGER_UI_DIST)."""
    from drf_spectacular.settings import spectacular_settings

    dist = urlsplit(str(spectacular_settings.SWAGGER_UI_DIST))
    origin = f"{dist.scheme}://{dist.netloc}" if dist.netloc else ""
    policy = dict(settings.SECURE_CSP)
    if origin:
        for directive in ("script-src", "style-src", "img-src"):
            policy[directive] = [*policy.get(directive, []), origin]
    return policy
