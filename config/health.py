"""GET /health/: the database, cache, task backend and providers, in one JSON answer."""

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.tasks import task_backends
from django.utils import timezone

from config.errors import error_response
from config.net import client_ip, rate_limit


def health(request: HttpRequest) -> JsonResponse:
    limit = rate_limit(scope="health", ident=client_ip(request), limit=settings.HEALTH_RATE_LIMIT_PER_MINUTE)
    if not limit.allowed:
        return error_response(429, "Rate limit exceeded", retry_after=60)
    body: dict = {"timestamp": timezone.now().isoformat(), "service": "donation-portal"}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        body["database"] = "connected"
    except Exception as exc:  # any driver error means "down" here
        body["database"] = f"unavailable: {type(exc).__name__}"
    try:
        cache.set("health:ping", "1", 5)
        body["cache"] = "connected" if cache.get("health:ping") == "1" else "not persisting"
    except Exception as exc:
        body["cache"] = f"unavailable: {type(exc).__name__}"
    body["tasks"] = type(task_backends["default"]).__name__
    body["telegram"] = "configured" if getattr(settings, "TELEGRAM_BOT_TOKEN", "") else "not configured"
    body["providers"] = {code: "configured" for code in settings.PAYMENT_PROVIDERS}
    if settings.PAYMENTS_SANDBOX_URL:
        body["providers"] = {code: f"sandbox at {settings.PAYMENTS_SANDBOX_URL}" for code in settings.PAYMENT_PROVIDERS}
    if body["database"] != "connected":
        body["status"] = "unhealthy"
        return JsonResponse(body, status=503)
    body["status"] = "healthy" if body["cache"] == "connected" else "degraded"
    return JsonResponse(body)
