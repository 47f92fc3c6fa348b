"""The one JSON error shape of docs/api.md, used by every /api/, /webhooks/ and /health/ path."""

from http import HTTPStatus

from django.http import JsonResponse

JSON_PATH_PREFIXES = ("/api/", "/webhooks/", "/health", "/mpesa/")

DEFAULT_CODES = {
    400: "INVALID_FORMAT",
    401: "AUTH_REQUIRED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "UNPROCESSABLE",
    429: "RATE_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
    502: "PROVIDER_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


def is_json_path(path: str) -> bool:
    return path.startswith(JSON_PATH_PREFIXES)


def error_body(status: int, message: str, code: str | None = None, **extra: object) -> dict:
    body: dict[str, object] = {
        "error": HTTPStatus(status).phrase,
        "message": message,
        "code": code or DEFAULT_CODES.get(status, "ERROR"),
    }
    body.update(extra)
    return body


def error_response(status: int, message: str, code: str | None = None, **extra: object) -> JsonResponse:
    return JsonResponse(error_body(status, message, code, **extra), status=status)
