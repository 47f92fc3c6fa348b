"""Failed logins are counted and locked out by django-axes; this module is our side of it (docs/security.md).

Axes counts failures per client IP (what `config.net.client_ip` decides behind our proxies) and, separately, per
username; either one over `AXES_FAILURE_LIMIT` within `AXES_COOLOFF_TIME` locks that client or that account out.
Here: the username axes records (case-folded, so "Admin" and "admin" are one account on MariaDB too), the lockout
page or JSON error, and the API token view that answers a lockout with 429 instead of simplejwt's 401.
"""

import logging
import math
from datetime import datetime, timedelta
from typing import Any

from axes.helpers import (
    get_client_parameters,
    get_client_user_agent,
    get_cool_off,
    get_failure_limit,
    get_lockout_message,
)
from axes.models import AccessAttempt
from django.conf import settings
from django.core import checks
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from rest_framework.response import Response
from rest_framework_simplejwt.views import TokenObtainPairView

from config.errors import error_body, is_json_path
from config.net import client_ip

logger = logging.getLogger("config.login_security")

LOCKED_OUT_CODE = "LOGIN_LOCKED_OUT"


def lockout_username(request: HttpRequest, credentials: dict | None = None) -> str | None:
    """AXES_USERNAME_CALLABLE: the username tried, stripped and case-folded.

    MariaDB compares usernames case-insensitively (utf8mb4_unicode_ci), so without this "Admin", "ADMIN" and
    "admin" would be three counters for one account."""
    field = str(settings.AXES_USERNAME_FORM_FIELD)
    if credentials:
        value = credentials.get(field)
    else:
        data = getattr(request, "data", None)
        if data is None or not hasattr(data, "get"):
            data = request.POST
        value = data.get(field)
    if value is None:
        return None
    return str(value).strip().casefold()


def lockout_ends_at(request: HttpRequest, credentials: dict | None = None) -> datetime | None:
    """When this client and this account may try again: the latest moment any locked counter falls back under
    the limit (each attempt record ages out `AXES_COOLOFF_TIME` after its last failure). None when unknown."""
    cool_off = get_cool_off(request)
    if not cool_off:
        return None
    limit = get_failure_limit(request, credentials)
    now = timezone.now()
    username = lockout_username(request, credentials)
    ip_address = getattr(request, "axes_ip_address", None) or client_ip(request)
    ends: list[datetime] = []
    for filters in get_client_parameters(username, ip_address, get_client_user_agent(request), request, credentials):
        attempts = AccessAttempt.objects.filter(**filters, attempt_time__gte=now - cool_off).order_by("-attempt_time")
        failures = 0
        for attempt_time, count in attempts.values_list("attempt_time", "failures_since_start"):
            failures += count
            if failures >= limit:  # the lock lasts until this record (and every older one) has aged out
                ends.append(attempt_time + cool_off)
                break
    return max(ends) if ends else None


def _retry(request: HttpRequest, credentials: dict | None) -> tuple[datetime | None, int]:
    """(retry at, seconds to wait); falls back to the whole cool-off when the records cannot be read."""
    cool_off = get_cool_off(request) or timedelta(0)
    try:
        ends = lockout_ends_at(request, credentials)
    except Exception:  # never let the lockout answer itself fail: the database may be what is failing
        logger.exception("Could not work out when a lockout ends")
        ends = None
    if ends is None:
        ends = timezone.now() + cool_off if cool_off else None
    seconds = max(1, math.ceil((ends - timezone.now()).total_seconds())) if ends else 0
    return ends, seconds


def _wait_words(seconds: int) -> str:
    minutes = math.ceil(seconds / 60)
    return ngettext("about a minute", "about %(minutes)d minutes", minutes) % {"minutes": minutes}


def _api_message(seconds: int) -> str:
    locked = _("Too many failed sign-in attempts: this account or this client is locked.")
    if seconds:
        return locked + " " + _("Try again in %(wait)s.") % {"wait": _wait_words(seconds)}
    return locked + " " + _("Ask an administrator.")


def locked_out_body(request: HttpRequest, credentials: dict | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """The API's error shape for a lockout, and its headers."""
    ends, seconds = _retry(request, credentials)
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if ends is not None:
        extra = {"retry_after": seconds, "retry_at": timezone.localtime(ends).isoformat(timespec="seconds")}
        headers["Retry-After"] = str(seconds)
    return error_body(429, _api_message(seconds), LOCKED_OUT_CODE, **extra), headers


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: 429 with a JSON error on API paths, else an HTML page saying when to retry."""
    try:
        if is_json_path(request.path):
            body, headers = locked_out_body(request, credentials)
            response: HttpResponse = JsonResponse(body, status=429)
        else:
            ends, seconds = _retry(request, credentials)
            headers = {"Retry-After": str(seconds)} if ends else {}
            response = _html_page(request, ends, seconds)
        for name, value in headers.items():
            response[name] = value
        return response
    except Exception:  # a lockout must never become a 500
        logger.exception("Lockout page failed; answering plain text")
        return HttpResponse(str(get_lockout_message()), status=429, content_type="text/plain; charset=utf-8")


def _html_page(request: HttpRequest, ends: datetime | None, seconds: int) -> HttpResponse:
    context: dict[str, Any] = {
        "retry_at": timezone.localtime(ends) if ends else None,
        "wait": _wait_words(seconds) if ends else "",
        "failure_limit": settings.AXES_FAILURE_LIMIT,
    }
    if request.path.startswith("/admin/"):
        from django.contrib import admin

        context.update(admin.site.each_context(request))
        context["title"] = "Sign-in paused"
        return render(request, "admin/locked_out.html", context, status=429)
    return render(request, "registration/locked_out.html", context, status=429)


class TokenObtainView(TokenObtainPairView):
    """simplejwt's token view, but a login axes refused answers 429 LOGIN_LOCKED_OUT, not 401.

    simplejwt authenticates with the DRF request, so axes flags that object (AxesMiddleware only sees the
    Django request underneath and cannot help here)."""

    def handle_exception(self, exc: Exception) -> Response:
        if getattr(self.request, "axes_locked_out", False):
            body, headers = locked_out_body(self.request, getattr(self.request, "axes_credentials", None))
            return Response(body, status=429, headers=headers)
        return super().handle_exception(exc)


def adapt_axes_admin() -> None:
    """axes' admin lists (access attempts: delete one to unlock) drill down by date, which on MySQL/MariaDB needs
    the server's time zone tables; ours need not have them (payments/selectors.py), and the list would be a 500.
    The date filter in the sidebar stays."""
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog
    from django.contrib import admin

    for model in (AccessAttempt, AccessLog, AccessFailureLog):
        if admin.site.is_registered(model):
            admin.site.get_model_admin(model).date_hierarchy = None


@checks.register(checks.Tags.security, deploy=True)
def login_lockouts_deploy_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """`check --deploy` warns when nothing stops a password guesser."""
    if settings.AXES_ENABLED:
        return []
    return [
        checks.Warning(
            "AXES_ENABLED is off: failed logins on the admin, the donor login and the API token endpoint are not "
            "counted, and nothing locks a password guesser out.",
            hint="Set AXES_ENABLED=True (docs/security.md).",
            id="config.W001",
        )
    ]
