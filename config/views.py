"""Error pages: JSON on API paths, friendly HTML elsewhere."""

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
