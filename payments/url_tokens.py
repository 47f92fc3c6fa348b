"""Secrets that appear in callback URLs, and keyed digests of what we store about callbacks.

A callback URL we hand to a provider carries a random secret (`/webhooks/mpesa/stkpush/<token>/`). Only the
provider and we know it, so it is evidence that a callback came from the provider we gave it to. We never
store it in clear: the payment row and the inbox row keep an HMAC of it (keyed with SECRET_KEY), so someone
who can read the database cannot forge a callback with it. The same keyed hash is used for the digest of a
callback's raw body: a plain SHA-256 of a body that held AzamPay's callback password would let anyone with
the (redacted) stored body and its digest try passwords offline.

Rotating SECRET_KEY invalidates the digests of payments still pending: their callbacks then arrive with a
token we no longer recognise and are answered 401; reconciliation still settles those payments.
"""

import hmac
import secrets

from django.utils.crypto import salted_hmac

TOKEN_SALT = "payments.url_token"  # noqa: S105 (an HMAC salt, public by design)
BODY_SALT = "payments.callback_body"


def new_url_token() -> str:
    """32 URL-safe characters (192 bits)."""
    return secrets.token_urlsafe(24)


def url_token_digest(token: str) -> str:
    return salted_hmac(TOKEN_SALT, token, algorithm="sha256").hexdigest()


def body_digest(body: bytes) -> str:
    return salted_hmac(BODY_SALT, body, algorithm="sha256").hexdigest()


def digests_match(a: str, b: str) -> bool:
    """Constant-time comparison of two digests; an empty one never matches."""
    return bool(a and b) and hmac.compare_digest(a.encode(), b.encode())
