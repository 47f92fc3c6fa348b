"""DRF exceptions rendered in docs/api.md's error shape; Django ValidationError becomes a 400."""

import logging

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from config.errors import error_body

logger = logging.getLogger("config.errors")

CODES_BY_EXCEPTION = {
    exceptions.ParseError: "INVALID_FORMAT",
    exceptions.ValidationError: "VALIDATION_ERROR",
    exceptions.NotAuthenticated: "AUTH_REQUIRED",
    exceptions.AuthenticationFailed: "AUTH_REQUIRED",
    exceptions.PermissionDenied: "FORBIDDEN",
    exceptions.NotFound: "NOT_FOUND",
    exceptions.MethodNotAllowed: "METHOD_NOT_ALLOWED",
    exceptions.UnsupportedMediaType: "UNSUPPORTED_MEDIA_TYPE",
    exceptions.Throttled: "RATE_LIMIT_EXCEEDED",
}


def _django_validation_to_drf(exc: DjangoValidationError) -> exceptions.ValidationError:
    if hasattr(exc, "error_dict"):
        return exceptions.ValidationError({k: [m for e in v for m in e.messages] for k, v in exc.error_dict.items()})
    return exceptions.ValidationError({"non_field_errors": exc.messages})


def api_exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = _django_validation_to_drf(exc)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None:
        return None  # unhandled: JsonErrorMiddleware logs it and answers a 500 with a request id

    code = next((c for cls, c in CODES_BY_EXCEPTION.items() if isinstance(exc, cls)), None)
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        message = _first_message(fields)
        body = error_body(status.HTTP_400_BAD_REQUEST, message, code, errors=fields)
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        body = error_body(response.status_code, str(detail), code)
        if isinstance(exc, exceptions.Throttled):
            body["message"] = "Rate limit exceeded"
            body["retry_after"] = int(exc.wait or 60)
    return Response(body, status=response.status_code, headers=_passthrough_headers(response))


def _first_message(fields) -> str:
    for key, value in fields.items():
        while isinstance(value, (list, dict)) and value:
            value = value[0] if isinstance(value, list) else next(iter(value.values()))
        if value:
            return str(value) if key == "non_field_errors" else f"{key}: {value}"
    return "Invalid input."


def _passthrough_headers(response: Response) -> dict:
    return {h: response[h] for h in ("Allow", "Retry-After", "WWW-Authenticate") if h in response}
