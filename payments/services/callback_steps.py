"""The one skeleton every stored callback runs: authenticate → parse → attach the references → decide.

Each role (a payment, a paybill validation or confirmation, a payout or refund result, a notice) says only how
its body is read and what it decides. The 401 for a forged delivery, the 400 for an unreadable one (both kept
in the inbox as `rejected`) and the references copied onto the event are written here once, so a new role
cannot forget one of them. `dispatch.callback_handle` runs this inside its exception boundary.
"""

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from payments.models import CallbackEvent
from payments.providers.base import CallbackMalformed, CallbackTrust
from payments.providers.registry import get_provider
from payments.services.inbox import (
    CallbackOutcome,
    Outcome,
    TokenCheck,
    callback_event_mark,
    event_trust,
    url_token_check,
)

logger = logging.getLogger("payments.callbacks")


@dataclass(frozen=True)
class Parsed:
    """What a role read from a body: the value its decision works on and the references it names."""

    value: Any
    our_reference: str = ""
    provider_reference: str = ""


@dataclass(frozen=True)
class Delivery:
    """One authenticated (or undecidable) callback, as a role's decision sees it."""

    event: CallbackEvent
    provider: Any
    body: bytes
    token: TokenCheck
    trust: str
    value: Any = None  # Parsed.value; None for a role with nothing to read
    in_worker: bool = False  # run by a task worker (CALLBACK_ACK=stored): verify inline, no second task

    @property
    def on_its_word(self) -> bool:
        """Authenticated by the provider's own mechanism, and the operator lets such callbacks move money."""
        return self.trust == CallbackTrust.TRUSTED and settings.PAYMENTS_APPLY_TRUSTED_CALLBACKS


class Role(ABC):
    """What one kind of callback does beyond the shared steps."""

    what = "callback"  # in the 400 answer: "Malformed {what}: …"
    # The adapter's verdict is taken as on live bytes even on a replay (the paybill's evidence — the URL's
    # secret and the source address — is never redacted from the stored copy).
    judge_as_live = False

    def provider(self, event: CallbackEvent) -> Any:
        """The adapter for this event, or None when its rail lacks the capability (then `no_provider`)."""
        return get_provider(event.provider)

    def no_provider(self, event: CallbackEvent) -> CallbackOutcome:
        raise NotImplementedError  # only roles whose `provider` may answer None

    def parse(self, provider: Any, event: CallbackEvent, body: bytes) -> Parsed | None:
        """Read the body (CallbackMalformed if it cannot be); None when there is nothing to read."""
        return None

    @abstractmethod
    def decide(self, delivery: Delivery) -> CallbackOutcome:
        """The role's own rules, once the delivery is authenticated, read and named."""


def callback_steps(
    role: Role, *, event: CallbackEvent, body: bytes, live: bool, in_worker: bool = False
) -> CallbackOutcome:
    """Run one stored delivery through the shared steps and its role's decision. `live`: `body` holds the raw
    bytes as they arrived (not the redacted copy in the inbox), so secrets in it can still be checked."""
    provider = role.provider(event)
    if provider is None:
        return role.no_provider(event)
    token = url_token_check(event, provider)
    trust = event_trust(event, provider, body, token, live or role.judge_as_live)
    if trust == CallbackTrust.REJECTED:
        callback_event_mark(event, CallbackEvent.Status.REJECTED, error="authentication failed")
        logger.warning("Callback %s (%s) from %s rejected: not authentic", event.pk, event.kind, event.client_ip)
        return CallbackOutcome(Outcome.UNAUTHENTICATED, 401, "Callback authentication failed.")
    try:
        parsed = role.parse(provider, event, body)
    except CallbackMalformed as exc:
        callback_event_mark(event, CallbackEvent.Status.REJECTED, error=f"malformed: {exc}")
        return CallbackOutcome(Outcome.MALFORMED, 400, f"Malformed {role.what}: {exc}.")
    if parsed is not None:
        event.our_reference, event.provider_reference = parsed.our_reference, parsed.provider_reference
    delivery = Delivery(
        event=event,
        provider=provider,
        body=body,
        token=token,
        trust=trust,
        value=parsed.value if parsed is not None else None,
        in_worker=in_worker,
    )
    return role.decide(delivery)


def held(event: CallbackEvent, why: str, message: str = "Received; held for review.") -> CallbackOutcome:
    """Kept for a person: nothing applied, never retried."""
    callback_event_mark(event, CallbackEvent.Status.REVIEW, error=why)
    return CallbackOutcome(Outcome.REVIEW, 200, message)
