"""The scripted outcomes, chosen by the last two digits of the payer's phone number (docs/api.md, "The sandbox").

Provider-neutral on purpose: each simulator translates a `Result` into its own words (AzamPay's
"transactionstatus"/message, Daraja's ResultCode, MTN's status/reason, …), so every provider scripts the
same scenarios and a test written against one table works for all of them.
"""

from dataclasses import dataclass
from enum import StrEnum


class Result(StrEnum):
    SUCCESS = "success"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    DECLINED = "declined"  # a card refused on the hosted page
    FAILED = "failed"  # generic failure (the bogus first callback of row 07)


PENDING = "pending"  # the state of a charge before its decision moment; not a Result because it is not final


@dataclass(frozen=True)
class ScriptedCallback:
    after: float  # seconds after the charge was created (or the payer decided), before time scaling
    result: Result
    copies: int = 1  # >1: that many identical deliveries released together (a duplicate storm)


@dataclass(frozen=True)
class Outcome:
    name: str
    result: Result  # the provider's truth once decided (what its status query says)
    decide_after: float  # seconds until the status query stops saying "pending", before time scaling
    callbacks: tuple[ScriptedCallback, ...]
    description: str


DECISION_SECONDS = 1.0
TIMEOUT_SECONDS = 30.0
LATE_CALLBACK_SECONDS = 10.0

SUCCESS = Outcome(
    "success",
    Result.SUCCESS,
    DECISION_SECONDS,
    (ScriptedCallback(DECISION_SECONDS, Result.SUCCESS),),
    "success; callback about 1 s later",
)
OUTCOMES_BY_SUFFIX: dict[str, Outcome] = {
    "01": Outcome(
        "insufficient_funds",
        Result.INSUFFICIENT_FUNDS,
        DECISION_SECONDS,
        (ScriptedCallback(DECISION_SECONDS, Result.INSUFFICIENT_FUNDS),),
        "failed: insufficient funds",
    ),
    "02": Outcome(
        "cancelled",
        Result.CANCELLED,
        DECISION_SECONDS,
        (ScriptedCallback(DECISION_SECONDS, Result.CANCELLED),),
        "cancelled by the payer",
    ),
    "03": Outcome(
        "no_answer",
        Result.TIMEOUT,
        TIMEOUT_SECONDS,
        (),
        "no answer: no callback; the status query reports a timeout after about 30 s",
    ),
    "04": Outcome(
        "duplicate_callbacks",
        Result.SUCCESS,
        DECISION_SECONDS,
        (ScriptedCallback(DECISION_SECONDS, Result.SUCCESS, copies=3),),
        "success; the callback is delivered three times, concurrently",
    ),
    "05": Outcome(
        "lost_callback",
        Result.SUCCESS,
        DECISION_SECONDS,
        (),
        "success; the callback is never delivered (only reconciliation finds it)",
    ),
    "06": Outcome(
        "late_callback",
        Result.SUCCESS,
        DECISION_SECONDS,
        (ScriptedCallback(LATE_CALLBACK_SECONDS, Result.SUCCESS),),
        "success; the callback arrives after about 10 s",
    ),
    "07": Outcome(
        "out_of_order",
        Result.SUCCESS,
        DECISION_SECONDS,
        (ScriptedCallback(DECISION_SECONDS, Result.FAILED), ScriptedCallback(2 * DECISION_SECONDS, Result.SUCCESS)),
        "failure callback first, then the real success callback (out of order)",
    ),
}

# Hosted pages: the payer's button decides, at the moment it is pressed.
CARD_PAID = Outcome(
    "card_paid", Result.SUCCESS, 0.0, (ScriptedCallback(0.0, Result.SUCCESS),), "paid on the hosted page"
)
CARD_FAILED = Outcome(
    "card_failed", Result.DECLINED, 0.0, (ScriptedCallback(0.0, Result.DECLINED),), "failed on the hosted page"
)


def outcome_for_phone(msisdn: str) -> Outcome:
    """The scripted outcome for a payer number; anything not in the table succeeds."""
    digits = "".join(ch for ch in msisdn or "" if ch.isdigit())
    return OUTCOMES_BY_SUFFIX.get(digits[-2:], SUCCESS)
