"""Staff sessions end after STAFF_SESSION_IDLE_SECONDS without a request; donors' sessions are left alone.

A staff browser left open at the admin (where payouts are approved) is signed out after half an hour of silence
by default. Every request of a signed-in staff user records its time in the session; the first request after a
longer gap logs the user out (the session is flushed, so an approver's second factor goes with it) and carries on
as an anonymous request, which the admin answers with its login page. Donors never pay the session write.
"""

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import SESSION_KEY, logout
from django.http import HttpRequest, HttpResponse

LAST_SEEN_KEY = "staff_last_seen"


class StaffIdleTimeoutMiddleware:
    """After AuthenticationMiddleware (and OTPMiddleware, MessageMiddleware)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session = getattr(request, "session", None)
        if session is not None and session.get(SESSION_KEY) is not None:  # no user lookup for anonymous requests
            user = request.user
            if user.is_authenticated and user.is_staff:
                self._touch(request)
        return self.get_response(request)

    @staticmethod
    def _touch(request: HttpRequest) -> None:
        idle_limit = settings.STAFF_SESSION_IDLE_SECONDS
        now = int(time.time())
        last_seen = request.session.get(LAST_SEEN_KEY)
        if isinstance(last_seen, int) and now - last_seen > idle_limit:
            logout(request)
            minutes = max(1, idle_limit // 60)
            messages.info(
                request,
                f"You were signed out after {minutes} minutes without activity. Please sign in again.",
                fail_silently=True,
            )
            return
        request.session[LAST_SEEN_KEY] = now
