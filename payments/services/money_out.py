"""One lifecycle for money we send: payouts to treatment partners and refunds to donors.

    requested ──approve (a second person)──▶ sending ──answer──▶ sent ──result──▶ paid|refunded / failed
        └─cancel─▶ cancelled                   │                   └─queue timeout─▶ ambiguous ─result, person─▶ …
                                               └─timed out after sending─▶ ambiguous (never re-sent)

`TRANSITIONS` is the whole machine and `_move` its only writer: a compare-and-set on the state a change
comes from, so a result racing the request's own answer is never overwritten. A `Flow` (payouts.py,
refunds.py) says what differs: the capability and request, how a result reads, what "done" does to the
books. Results are matched within their rail and kind by ids we knew before sending; one that names nothing
we know yet stays unsettled and is run again once the request's answer is stored. With
PAYMENTS_APPLY_TRUSTED_CALLBACKS off, or unauthenticated, a result moves nothing on its own word: the
status query decides where the rail has one, else a person applies it (`money_out_apply_held`, audited).
This module is the lifecycle (transitions, approve, send, settle, resolve); money_out_results.py reads the
results (matching, the callback's decision, held results, the status-query poll, what waits for a person).
"""

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from patients.models import Patient
from payments.models import CallbackEvent, MoneyOut, Payout, Refund, fit
from payments.providers.base import (
    CallbackRole,
    PaymentProvider,
    Settlement,
)
from payments.providers.registry import PROVIDER_CLASSES, MissingCapability, UnknownProvider, get_capable
from payments.services.audit import audit_record
from payments.services.inbox import callback_event_mark

logger = logging.getLogger("payments.money_out")
S = MoneyOut.Status
DONE = "done"  # the flow's own success state (paid or refunded) in the table below
PENDING = "pending"
TRANSITIONS: dict[str, frozenset[str]] = {
    S.REQUESTED: frozenset({S.SENDING, S.CANCELLED}),
    S.SENDING: frozenset({S.SENT, S.AMBIGUOUS, S.FAILED, DONE}),
    S.SENT: frozenset({S.AMBIGUOUS, S.FAILED, DONE}),
    S.AMBIGUOUS: frozenset({S.FAILED, DONE}),
}
STUCK_SENDING_AFTER = timedelta(minutes=10)  # the sending process died: poll it, or a person may resolve it
SENT_DEADLINE = timedelta(hours=1)  # a result this late is a person's business (the watchdog says so)
CHECK_EVERY = timedelta(minutes=5)  # how often a rail with a status query is asked about one awaiting a result
Staff = User


class Settled(StrEnum):
    """What `settle_outcome` made of a verdict."""

    APPLIED = "applied"
    SAME = "same"  # it says what is already so (a copy of a delivery already applied)
    REVIEW = "review"  # it contradicts a settled one, or names another amount or currency: nothing applied
    PENDING = "pending"


class MoneyOutRefused(Exception):
    """The request breaks a rule (maker-checker, limit, state). `message` is shown to the staff user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Verdict:
    """A provider's word on one payout or refund, in the lifecycle's terms."""

    outcome: str  # DONE, S.FAILED or PENDING
    our_reference: str = ""
    provider_reference: str = ""
    reversed_receipt: str = ""  # a refund's: the receipt of the payment it gave back
    code: str = ""
    description: str = ""
    receipt: str = ""
    amount: Decimal | None = None
    currency: str = ""

    @classmethod
    def of(cls, result: Any, outcome: str, **overrides: Any) -> "Verdict":
        """From a provider's PayoutResult or RefundResult (the fields they share, by name)."""
        names = ("our_reference", "provider_reference", "code", "receipt", "currency", "reversed_receipt")
        fields: dict[str, Any] = {name: getattr(result, name, "") for name in names}
        fields["amount"] = result.amount
        fields["description"] = getattr(result, "description", "") or getattr(result, "message", "")
        return cls(outcome, **(fields | overrides))


@dataclass(frozen=True)
class Sent:
    provider_reference: str
    verdict: Verdict | None = None  # the answer was itself the result (Airtel)


class Flow(ABC):
    def __init__(self, model: type[Payout] | type[Refund], capability: type) -> None:
        self.model, self.capability = model, capability
        self.name = model._meta.model_name or ""  # "payout", "refund": audit actions, permissions, messages
        self.result_role = CallbackRole(f"{self.name}_result")
        self.timeout_role = CallbackRole(f"{self.name}_timeout")

    def provider(self, code: str) -> Any:
        try:
            return get_capable(code, self.capability)
        except (UnknownProvider, MissingCapability):
            return None

    def display(self, code: str) -> str:
        return str(getattr(PROVIDER_CLASSES.get(code), "display_name", code))

    def settled_by(self, provider: Any) -> frozenset[Settlement]:
        """How the rail tells us its outcome: `Payouts.payout_settled_by`, `Refunds.refund_settled_by`."""
        return getattr(provider, f"{self.name}_settled_by")

    def chosen_id(self, provider: Any, obj: Any) -> str:
        """The provider's id for it when we choose it before sending (stored before the request)."""
        return ""

    @abstractmethod
    def send(self, provider: Any, obj: Any, result_url: str, timeout_url: str) -> Sent: ...

    @abstractmethod
    def query(self, provider: Any, obj: Any) -> Verdict | None: ...

    @abstractmethod
    def parse(self, provider: Any, kind: str, body: bytes) -> Verdict: ...

    def matches(self, verdict: Verdict) -> list[Q]:
        """What may name it, most exact first: our id, then the provider's."""
        found = [Q(reference=verdict.our_reference)] if verdict.our_reference else []
        return found + ([Q(provider_reference=verdict.provider_reference)] if verdict.provider_reference else [])

    @abstractmethod
    def patient_id(self, obj: Any) -> int | None:
        """The patient whose funds it takes (a refund of a general-fund gift takes none)."""

    def before_approve(self, obj: Any, receipt: str) -> None:  # noqa: B027 (a hook; most flows have none)
        """Rules of its own, checked under the row lock as it is approved (a manual refund's receipt)."""

    @abstractmethod
    def on_done(self, obj: Any, verdict: Verdict) -> None:
        """What a paid payout or refunded refund does to the books; inside the caller's transaction."""


def require(user: Staff, permission: str, action: str, *alternatives: str) -> None:
    allowed = getattr(user, "is_staff", False) and user.is_active
    if not (allowed and any(user.has_perm(p) for p in (permission, *alternatives))):
        raise MoneyOutRefused(f"Only staff users with the {permission!r} permission may {action}.")


def funds_available(patient: Patient, *, exclude: MoneyOut | None = None) -> Decimal:
    """The one rule: funds received and not yet paid out, committed to a payout, or being refunded."""
    payouts = Payout.objects.filter(patient=patient, status__in=(S.REQUESTED, *MoneyOut.AWAITING_RESULT, S.PAID))
    refunds = Refund.objects.filter(donation__patient=patient, status__in=(S.REQUESTED, *MoneyOut.AWAITING_RESULT))
    if isinstance(exclude, Payout):
        payouts = payouts.exclude(pk=exclude.pk)
    elif isinstance(exclude, Refund):
        refunds = refunds.exclude(pk=exclude.pk)
    used = sum((qs.aggregate(t=Sum("amount"))["t"] or Decimal("0") for qs in (payouts, refunds)), Decimal("0"))
    return patient.funding_received - used


def _move(flow: Flow, obj: MoneyOut, to: str, **fields: Any) -> bool:
    """Compare-and-set: move `obj` to `to` from whatever state may lead there, as the table says."""
    sources = [state for state, targets in TRANSITIONS.items() if to in targets]
    status = flow.model.DONE if to == DONE else to
    moved = flow.model.objects.filter(pk=obj.pk, status__in=sources).update(status=status, **fields) == 1
    if moved:
        obj.refresh_from_db()
    return moved


def settle(flow: Flow, obj_id: int, verdict: Verdict) -> MoneyOut:
    """Apply a provider's (or a person's) verdict to one payout or refund awaiting it. Idempotent."""
    return settle_outcome(flow, obj_id, verdict)[0]


def settle_outcome(flow: Flow, obj_id: int, verdict: Verdict) -> tuple[MoneyOut, Settled, str]:
    """…and say what became of the verdict (`Settled`), with why when it is held for review."""
    with transaction.atomic():
        obj = flow.model.objects.select_for_update().get(pk=obj_id)
        if verdict.outcome == PENDING:
            return obj, Settled.PENDING, ""
        wrong = _mismatch(obj, verdict)
        if obj.status not in MoneyOut.AWAITING_RESULT or wrong:
            if _already_says(flow, obj, verdict) and not wrong:
                return obj, Settled.SAME, ""
            why = wrong or f"result for {flow.name} {obj.reference} in {obj.status}"
            if wrong or (verdict.outcome == DONE and obj.status != flow.model.DONE):
                # Money moved after we said no, or not as we asked: a person looks; nothing is applied.
                flow.model.objects.filter(pk=obj.pk).update(
                    needs_review=True, result_desc=fit(flow.model, "result_desc", why)
                )
            obj.refresh_from_db()
            return obj, Settled.REVIEW, why
        now = timezone.now()
        fields = {
            "result_code": fit(flow.model, "result_code", verdict.code),
            "result_desc": fit(flow.model, "result_desc", verdict.description),
            "completed_at": now,
            "next_check_at": None,
            "needs_review": False,
            "updated_at": now,
        }
        if verdict.outcome == DONE:
            fields["receipt"] = fit(flow.model, "receipt", verdict.receipt or verdict.provider_reference)
        if not obj.provider_reference and verdict.provider_reference:  # learnt from the result (the answer was lost)
            fields["provider_reference"] = fit(flow.model, "provider_reference", verdict.provider_reference)
        _move(flow, obj, verdict.outcome, **fields)
        if verdict.outcome == DONE:
            flow.on_done(obj, verdict)
        close_held(flow, obj, f"{flow.name} settled: {obj.status}")
    logger.info("%s %s %s (%s %s)", flow.name.title(), obj.reference, obj.status, verdict.code, verdict.description)
    obj.refresh_from_db()
    return obj, Settled.APPLIED, ""


def _already_says(flow: Flow, obj: MoneyOut, verdict: Verdict) -> bool:
    """Settled exactly as this verdict says: done with its receipt, or failed with its code (a copy of a
    delivery whose first handling died after its commit)."""
    if obj.status == flow.model.DONE:
        return verdict.outcome == DONE and (not verdict.receipt or verdict.receipt[:100] == obj.receipt)
    return obj.status == S.FAILED and verdict.outcome == S.FAILED and verdict.code == obj.result_code


def _mismatch(obj: MoneyOut, verdict: Verdict) -> str:
    if verdict.outcome != DONE:
        return ""
    if verdict.amount is not None and verdict.amount != obj.amount:
        return f"the provider says {verdict.amount} was sent, we asked for {obj.amount}: held for review"
    if verdict.currency and verdict.currency != obj.currency:
        return f"the provider says {verdict.currency}, we asked for {obj.currency}: held for review"
    return ""


def cancel(flow: Flow, obj_id: int, by: Staff) -> MoneyOut:
    """Withdraw a request nobody has approved yet (frees the patient's funds)."""
    require(by, f"payments.add_{flow.name}", f"cancel {flow.name} requests", f"payments.approve_{flow.name}")
    with transaction.atomic():
        obj = flow.model.objects.select_for_update().get(pk=obj_id)
        if not _move(
            flow,
            obj,
            S.CANCELLED,
            result_desc=fit(flow.model, "result_desc", f"Cancelled by {by}"),
            completed_at=timezone.now(),
            updated_at=timezone.now(),
        ):
            raise MoneyOutRefused(f"{obj.reference} is {obj.status}; only a request can be cancelled.")
        audit_record(actor=by, action=f"{flow.name}.cancel", target=f"{flow.name} {obj.reference}")
    return obj


def resolve(flow: Flow, obj_id: int, *, done: bool, by: Staff, receipt: str = "") -> MoneyOut:
    """Settle an ambiguous, overdue or stuck one by hand, after checking the provider's portal. Never re-sends."""
    require(by, f"payments.resolve_{flow.name}", f"resolve {flow.name}s")
    if done and not receipt.strip():
        raise MoneyOutRefused("Give the provider's receipt (transaction id) seen on its portal.")
    obj = flow.model.objects.get(pk=obj_id)
    stuck = obj.status == S.SENDING and (obj.approved_at or obj.updated_at) < timezone.now() - STUCK_SENDING_AFTER
    if obj.status not in (S.AMBIGUOUS, S.SENT) and not stuck:
        hint = " (still sending; wait a few minutes)" if obj.status == S.SENDING else ""
        raise MoneyOutRefused(f"{flow.name.title()} {obj.reference} is {obj.status}; nothing to resolve{hint}.")
    verdict = Verdict(DONE if done else S.FAILED, receipt=receipt.strip(), description=f"Resolved by hand by {by}")
    settled = settle(flow, obj.pk, verdict)
    close_held(flow, settled, f"settled by hand by {by}")
    audit_record(
        actor=by,
        action=f"{flow.name}.resolve",
        target=f"{flow.name} {obj.reference}",
        detail=f"{settled.status} (receipt {receipt.strip() or '-'})",
    )
    logger.warning("%s %s resolved by hand by %s: %s", flow.name.title(), obj.reference, by, settled.status)
    return settled


def mark_reviewed(flow: Flow, obj_id: int, by: Staff, note: str = "") -> MoneyOut:
    """A person has looked at one flagged for review (a late or mismatched result) and settled it outside."""
    require(by, f"payments.resolve_{flow.name}", f"review {flow.name}s")
    obj = flow.model.objects.get(pk=obj_id)
    flow.model.objects.filter(pk=obj.pk).update(needs_review=False)
    close_held(flow, obj, f"reviewed by {by}")
    audit_record(actor=by, action=f"{flow.name}.reviewed", target=f"{flow.name} {obj.reference}", detail=note)
    obj.refresh_from_db()
    return obj


def _kind(provider: type[PaymentProvider] | PaymentProvider, role: CallbackRole) -> str:
    route = provider.route_for(role)
    return route.kind if route else ""


def _kinds(flow: Flow, code: str) -> list[str]:
    cls = PROVIDER_CLASSES.get(code)
    return [k for k in (_kind(cls, flow.result_role), _kind(cls, flow.timeout_role)) if k] if cls else []


def close_held(flow: Flow, obj: MoneyOut, why: str) -> None:
    for event in held_results(flow).filter(our_reference=obj.reference, provider=obj.provider):
        callback_event_mark(event, CallbackEvent.Status.IGNORED, error=f"{event.error}; {why}")


def held_results(flow: Flow) -> Any:
    """Result callbacks waiting for a person (held for review) or for a payout/refund they can name."""
    kinds = Q(pk__in=[])
    for code in settings.PAYMENT_PROVIDERS:
        kinds |= Q(provider=code, kind__in=_kinds(flow, code))
    waiting = (CallbackEvent.Status.REVIEW, CallbackEvent.Status.FAILED, CallbackEvent.Status.DEAD)
    return CallbackEvent.objects.filter(kinds, status__in=waiting)
