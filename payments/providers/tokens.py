"""Provider access tokens in the shared cache, written once for every adapter.

One token per provider account is shared by every worker (a new token may revoke the previous one at some
providers, so workers must not each fetch their own). The cache is an optimisation, never a dependency:
when it is down, a token is fetched for the request at hand and the payment goes ahead.
"""

import logging
from collections.abc import Callable

from django.core.cache import cache

logger = logging.getLogger("payments.tokens")


class TokenCache:
    def __init__(self, key: str):
        self.key = key

    def get(self, fetch: Callable[[], tuple[str, int]]) -> str:
        """The cached token, or `fetch()` → (token, seconds to keep it; ≤ 0 = use once, do not cache)."""
        try:
            token = cache.get(self.key)
        except Exception as exc:  # cache down: fetch one for this request
            logger.warning("Token cache unavailable (%s); fetching a token", type(exc).__name__)
            token = None
        if token:
            return token
        token, ttl = fetch()
        if ttl > 0:
            try:
                cache.set(self.key, token, ttl)
            except Exception as exc:
                logger.warning("Token cache unavailable (%s); token not cached", type(exc).__name__)
        return token

    def forget(self) -> None:
        """Drop a token the provider refused (revoked or expired early); the next call fetches a new one."""
        try:
            cache.delete(self.key)
        except Exception as exc:
            logger.warning("Token cache unavailable (%s); could not drop a refused token", type(exc).__name__)
