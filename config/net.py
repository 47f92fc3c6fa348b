"""Client IP through trusted proxies, and a fixed-window rate limit on the shared cache."""

import ipaddress
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.locmem import LocMemCache
from django.http import HttpRequest

logger = logging.getLogger("config.net")


def client_ip(request: HttpRequest) -> str | None:
    """REMOTE_ADDR, unless it is a trusted proxy: then the nearest X-Forwarded-For hop we do not trust."""
    remote = request.META.get("REMOTE_ADDR") or None
    trusted = set(settings.TRUSTED_PROXIES)
    if remote not in trusted:
        return _valid_ip(remote)
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
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


# Where windows are counted while the shared cache is down: this process's memory (docs/fault-safety.md).
_FALLBACK = LocMemCache("rate-limit-fallback", {"OPTIONS": {"MAX_ENTRIES": 10_000}})


def rate_limit(*, scope: str, ident: str | None, limit: int, window: int = 60) -> RateLimitState:
    """A fixed window per scope and client, counted in the shared cache.

    With the cache down (Redis unreachable) it never refuses because of the outage: it counts in this process's
    memory instead, and says so in the log. Each process then enforces the limit on its own (the site-wide limit
    becomes the limit times the processes), which keeps a door bounded without making a cache outage stop
    donations, sign-ins or callbacks (a lost callback or donation is worse than a looser limit)."""
    now = int(time.time())
    window_start = now - now % window
    key = f"rl:{scope}:{ident or 'unknown'}:{window_start}"
    try:
        count = _count(cache, key, window)
    except Exception as exc:  # the cache is down: count here, and say so in the log
        logger.warning("Rate limit %s counted in this process only: cache unavailable (%s)", scope, type(exc).__name__)
        count = _count(_FALLBACK, key, window)
    return RateLimitState(count <= limit, limit, max(0, limit - count), window_start + window)


def _count(store: BaseCache, key: str, window: int) -> int:
    if store.add(key, 1, window + 5):
        return 1
    try:
        return store.incr(key)
    except ValueError:  # expired between add and incr
        store.set(key, 1, window + 5)
        return 1
