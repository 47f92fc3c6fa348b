"""The sandbox's own truth: charges, callback deliveries, tokens and Telegram messages, in memory.

The sandbox never touches the project's database: it plays the provider, whose records the site can only
learn about through callbacks and status queries. One lock guards everything because request threads,
the scheduler and the delivery workers all read and write here.
"""

import math
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from payments.sandbox.outcomes import PENDING, Outcome


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Delivery:
    """One attempt to POST a callback to the site."""

    label: str  # the result it announced ("success", "insufficient_funds", …)
    url: str
    at: datetime
    http_status: int | None = None
    response: str = ""  # the first characters of the site's answer
    error: str = ""  # why it did not reach the site (connection refused, timeout, …)
    duration_ms: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "url": self.url,
            "at": iso(self.at),
            "http_status": self.http_status,
            "response": self.response,
            "error": self.error,
            "duration_ms": self.duration_ms,
        }


@dataclass
class Charge:
    """One payment request as the provider sees it."""

    provider: str
    transaction_id: str
    external_id: str
    msisdn: str
    amount: str  # exactly as the site sent it: providers echo it back verbatim
    currency: str
    channel: str
    # None while a hosted page waits for the payer's button.
    outcome: Outcome | None
    created_at: datetime = field(default_factory=utc_now)
    created_mono: float = field(default_factory=time.monotonic)
    decide_at: float = math.inf  # monotonic moment the outcome becomes the truth
    extra: dict[str, Any] = field(default_factory=dict)  # provider specifics (redirect URLs, receipts, …)
    deliveries: list[Delivery] = field(default_factory=list)

    def state(self, now: float | None = None) -> str:
        """Return "pending" before the decision moment, then the outcome's result."""
        now = time.monotonic() if now is None else now
        if self.outcome is None or now < self.decide_at:
            return PENDING
        return self.outcome.result.value

    def as_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "transactionId": self.transaction_id,
            "externalId": self.external_id,
            "msisdn": self.msisdn,
            "amount": self.amount,
            "currency": self.currency,
            "channel": self.channel,
            "outcome": self.outcome.name if self.outcome else "awaiting_payer",
            "status": self.state(),
            "created_at": iso(self.created_at),
            "extra": {k: v for k, v in self.extra.items() if not k.startswith("_")},
            "deliveries": [d.as_json() for d in self.deliveries],
        }


@dataclass
class IssuedToken:
    provider: str
    expires_mono: float
    expires_at: datetime


class SandboxStore:
    """Everything the simulated providers remember. All access goes through `lock`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        # Bumped by reset(): scheduled callbacks of a previous generation are dropped, so one test's
        # late deliveries never land in the next test.
        self.generation = 0
        self.charges: dict[tuple[str, str], Charge] = {}
        self.tokens: dict[str, IssuedToken] = {}
        self.messages: list[dict[str, Any]] = []
        self._message_id = 0

    def reset(self) -> None:
        # Tokens survive a reset: they belong to the site's credentials and the site caches them.
        with self.lock:
            self.generation += 1
            self.charges.clear()
            self.messages.clear()

    # --- charges ---------------------------------------------------------------------------------

    def add_charge(self, charge: Charge) -> Charge:
        with self.lock:
            self.charges[(charge.provider, charge.transaction_id)] = charge
        return charge

    def get_charge(self, provider: str, transaction_id: str) -> Charge | None:
        with self.lock:
            return self.charges.get((provider, transaction_id))

    def find_charges(self, *, provider: str = "", external_id: str = "") -> list[Charge]:
        with self.lock:
            charges = sorted(self.charges.values(), key=lambda c: c.created_mono)
        return [
            c
            for c in charges
            if (not provider or c.provider == provider) and (not external_id or c.external_id == external_id)
        ]

    def add_delivery(self, charge: Charge, delivery: Delivery) -> None:
        with self.lock:
            charge.deliveries.append(delivery)

    def charges_json(self, *, provider: str = "", external_id: str = "") -> list[dict[str, Any]]:
        with self.lock:
            return [c.as_json() for c in self.find_charges(provider=provider, external_id=external_id)]

    # --- tokens ------------------------------------------------------------------------------------

    def add_token(self, token: str, issued: IssuedToken) -> None:
        with self.lock:
            now = time.monotonic()
            # Forget expired tokens so a long demo does not grow without bound.
            for stale in [t for t, i in self.tokens.items() if i.expires_mono <= now]:
                del self.tokens[stale]
            self.tokens[token] = issued

    def token_valid(self, provider: str, token: str) -> bool:
        with self.lock:
            issued = self.tokens.get(token)
            return bool(issued and issued.provider == provider and issued.expires_mono > time.monotonic())

    # --- telegram -----------------------------------------------------------------------------------

    def add_message(self, message: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._message_id += 1
            message = {"message_id": self._message_id, **message}
            self.messages.append(message)
            return message

    def messages_json(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(m) for m in self.messages]
