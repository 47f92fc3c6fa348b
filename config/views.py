"""Error pages: JSON on API paths, friendly HTML elsewhere."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from config.errors import error_response, is_json_path


def handler404_view(request: HttpRequest, exception=None) -> HttpResponse:
    if is_json_path(request.path):
        return error_response(404, f"Nothing at {request.path}. Check the path and the API docs at /api/docs/.")
    return render(request, "404.html", status=404)


def handler500_view(request: HttpRequest) -> HttpResponse:
    if is_json_path(request.path):
        return error_response(500, "Something went wrong on our side.", request_id=getattr(request, "request_id", ""))
    return render(request, "500.html", {"request_id": getattr(request, "request_id", "")}, status=500)
