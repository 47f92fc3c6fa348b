"""Client IP through trusted proxies, and a fixed-window rate limit on the shared cache."""

import ipaddress
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

logger = logging.getLogger("config.net")


def client_ip(request: HttpRequest) -> str | None:
    """REMOTE_ADDR, unless it is a trusted proxy: then the nearest X-Forwarded-For hop we do not trust."""
    remote = request.META.get("REMOTE_ADDR") or None
    trusted = set(settings.TRUSTED_PROXIES)
    if remote not in trusted:
        return _valid_ip(remote)
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if hop not in trusted:
            return _valid_ip(hop)
    return _valid_ip(remote)


def _valid_ip(value: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None


@dataclass(frozen=True)
class RateLimitState:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # epoch seconds when the window ends

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


def rate_limit(*, scope: str, ident: str | None, limit: int, window: int = 60) -> RateLimitState:
    """A fixed window per scope and client. It fails open: with the cache down every request is allowed
    (a lost rate limit is an inconvenience; a lost callback or donation is not)."""
    now = int(time.time())
    window_start = now - now % window
    key = f"rl:{scope}:{ident or 'unknown'}:{window_start}"
    try:
        count = _count(key, window)
    except Exception as exc:  # the cache is down (Redis unreachable): allow, and say so in the log
        logger.warning("Rate limit %s not enforced: cache unavailable (%s)", scope, type(exc).__name__)
        return RateLimitState(True, limit, limit, window_start + window)
    return RateLimitState(count <= limit, limit, max(0, limit - count), window_start + window)


def _count(key: str, window: int) -> int:
    if cache.add(key, 1, window + 5):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, window + 5)
        return 1
