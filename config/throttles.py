"""Rate limits on the doors anyone can knock on: sign-in, registration and the donation status (per client IP),
and the 429 every limit answers (docs/security.md "Threats and what stops them", docs/api.md "Rate limits").

The counting is `config.net.rate_limit` (a fixed window in the shared cache, per client IP as
`config.net.client_ip` sees it behind TRUSTED_PROXIES). Payment prompts are limited in the service that starts
them (`payments.services.donations.donation_prompt_admit`: per client and per destination phone), because only
it knows the phone; the doors here need nothing but the request, so one middleware keeps them all in one table.

With the cache down, `rate_limit` counts in each process's own memory (logged as a warning): a door stays bounded
(the limit times the processes), and an outage never refuses anyone for being an outage. Failing closed would
stop every donation and sign-in while Redis is down; failing open would let one client prompt a phone without end.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy, ngettext

from config.errors import error_body, is_json_path
from config.net import RateLimitState, client_ip, rate_limit


class RateLimited(Exception):
    """Over a rate limit: `state` is the window that refused, `message` what to tell the person (a lazy
    translation: said in the language of the request it refuses)."""

    def __init__(self, state: RateLimitState, message: str | Promise):
        super().__init__(message)
        self.state = state
        self.message = message


def seconds_to_reset(state: RateLimitState) -> int:
    return max(1, state.reset - int(time.time()))


def rate_limit_headers(state: RateLimitState) -> dict[str, str]:
    """X-RateLimit-Limit/Remaining/Reset, and Retry-After (seconds) once the limit is reached."""
    headers = state.headers()
    if not state.allowed:
        headers["Retry-After"] = str(seconds_to_reset(state))
    return headers


def throttled_response(request: HttpRequest, limited: RateLimited) -> HttpResponse:
    """429: the API's error shape (`retry_after` in the body too) on API paths, the portal's page elsewhere."""
    wait = seconds_to_reset(limited.state)
    response: HttpResponse
    if is_json_path(request.path):
        response = JsonResponse(error_body(429, str(limited.message), retry_after=wait), status=429)
    else:
        minutes = math.ceil(wait / 60)
        wait_text = ngettext("about a minute", "about %(minutes)d minutes", minutes) % {"minutes": minutes}
        context = {"message": limited.message, "wait": wait_text}
        response = render(request, "429.html", context, status=429)
    for name, value in rate_limit_headers(limited.state).items():
        response[name] = value
    return response


@dataclass(frozen=True)
class Door:
    scope: str  # doors with one scope share one count per client (an API and its portal twin)
    setting: str  # the per-minute limit's setting
    methods: tuple[str, ...]
    message: str | Promise  # lazy: said in the language of the request it refuses

    def limit(self) -> int:
        return int(getattr(settings, self.setting))


SIGN_IN = Door(
    "sign-in",
    "LOGIN_RATE_LIMIT_PER_MINUTE",
    ("POST",),
    gettext_lazy("Too many sign-in attempts from your connection. Please wait a minute and try again."),
)
REGISTER = Door(
    "register",
    "REGISTER_RATE_LIMIT_PER_MINUTE",
    ("POST",),
    gettext_lazy("Too many accounts were created from your connection. Please wait a minute and try again."),
)
STATUS = Door(
    "donation-status",
    "STATUS_RATE_LIMIT_PER_MINUTE",
    ("GET", "HEAD"),
    gettext_lazy("Too many status requests from your connection. Please wait a minute; your donation is not affected."),
)
# URL name → door. The API and the portal share a count (one guesser, two doors, one limit).
DOORS: dict[str, Door] = {
    "token-obtain": SIGN_IN,
    "login": SIGN_IN,
    "admin:login": SIGN_IN,
    "donor-register": REGISTER,
    "signup": REGISTER,
    "donation-status": STATUS,
    "donation-status-page": STATUS,
    "donation-status-panel": STATUS,
}


class RateLimitMiddleware:
    """Counts each request to a door in DOORS against its client's limit; over it, the 429 and the view never
    runs. Every answer of a door carries the X-RateLimit-* headers."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        state = getattr(request, "_rate_limit_state", None)
        if state is not None:
            for name, value in state.headers().items():
                response.setdefault(name, value)
        return response

    def process_view(
        self, request: HttpRequest, view_func: Callable, view_args: tuple, view_kwargs: dict
    ) -> HttpResponse | None:
        match = request.resolver_match
        door = DOORS.get(match.view_name) if match else None
        if door is None or request.method not in door.methods:
            return None
        state = rate_limit(scope=door.scope, ident=client_ip(request), limit=door.limit())
        if not state.allowed:
            return throttled_response(request, RateLimited(state, door.message))
        request._rate_limit_state = state  # type: ignore[attr-defined]
        return None
