"""Applying stored payment callbacks many at a time (CALLBACK_BATCH_SIZE): what keeps the worker's credits up.

The drain `callbacks_drain` (dispatch.py) claims CALLBACK_BATCH_SIZE pending payment callbacks at a time, and
`process_callback` (tasks queued before the drain, replays) its own event and up to CALLBACK_BATCH_SIZE-1 other
pending payment callbacks, with SELECT … FOR UPDATE SKIP LOCKED on the inbox, and applies every one whose word
needs no provider call in one transaction: the payments locked in one query, compare-and-set under those locks as
payment_apply_result does, history, allocations and outbox notices in bulk INSERTs, each patient's total moved
once by the batch's sum, and one notice relay queued for the batch (coalesce.notices_relay). A task of one of
the others (queued before the drain) finds its event settled and returns at once. It works the same
under both task backends (django-tasks-db, rq): no new process, only a task that does more when there is more.

The claim is a short transaction of its own that marks the rows taken as the per-event path marks a delivery it
is about to verify (the attempt counted, due for the sweeper after CALLBACK_RETRY_GRACE_SECONDS); the credit is a
second one. A worker killed (or a database cut) mid-batch leaves its events `received`, nothing half-written,
and the sweeper runs them. Deliveries that need the provider's status query are asked concurrently
(CALLBACK_VERIFY_CONCURRENCY threads), then applied in a third transaction, again as a batch. Anything the
batch does not cover — forged, unreadable, unknown reference, a delivery whose step raised — goes to the
per-event path (`callback_handle`), which has every answer; a failure or a late success is applied in the batch's
transaction by payment_apply_result itself (its own rules, in order).

Failures: the batch's writes run in one savepoint. A delivery whose own step raises is dropped from the batch,
the savepoint rolled back and the rest re-run (failures are rare, and a savepoint per delivery would double the
round trips and rule out the bulk INSERTs); a bulk statement that fails (a unique constraint, a deadlock) cannot
say whose row it was, so the whole batch goes to the per-event path, each delivery in its own transaction.
"""

import logging
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import reduce

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from donor.completions import donations_complete, rows_update
from donor.models import Donation
from donor.notifications import notices_record_credits
from payments.models import CallbackEvent, Payment, PaymentHistory, fit
from payments.providers.base import CallbackRole, CallbackTrust, PaymentStatus, ProviderResult
from payments.providers.registry import PROVIDER_CLASSES
from payments.services.callback_steps import Delivery, held
from payments.services.callbacks import PAYMENT, TRACEBACK_CHARS, verification_ask, verification_verdict
from payments.services.coalesce import notices_relay_queue
from payments.services.inbox import (
    MARK_FIELDS,
    Outcome,
    callback_event_mark,
    callback_event_stamp,
    event_trust,
    url_token_check,
)
from payments.services.payments import Applied, method_label, payment_apply_result, result_mismatch

logger = logging.getLogger("payments.callbacks")
PAYMENT_FIELDS = ["status", "receipt", "failure_reason", "completed_at", "next_check_at", "provider_reference",
                  "needs_review", "updated_at"]  # fmt: skip


@dataclass
class Item:
    """One claimed delivery on its way through the batch."""

    event: CallbackEvent
    claimed: ProviderResult  # what the callback says
    payment: Payment
    result: ProviderResult | None = None  # what is applied (the callback's word, or the status query's)
    cause: str = ""
    note: str = ""  # kept on the event with the outcome (a contradicted amount)
    previous: str = ""  # the payment's state before this credit


@dataclass
class BatchReport:
    """What a batch did: the outcome of each event it settled, and the events left to the per-event path."""

    own: Outcome | None = None  # the task's own event, if this batch finished it (or another worker has it)
    claimed: int = 0  # how many inbox rows the claim took (0: nothing claimable was left)
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    fallback: list[int] = field(default_factory=list)


class _ItemFailed(Exception):
    def __init__(self, item: Item) -> None:
        super().__init__(item.event.pk)
        self.item = item


def callbacks_apply_batch(*, event_id: int | None, size: int) -> BatchReport:
    """Claim the task's own event and up to `size`-1 other pending payment callbacks, and apply them together.
    `own` is None when the task's event is not for the batch (another role, a retry): the caller runs it.
    `event_id` None (the drain, dispatch.callbacks_drain): the `size` oldest pending ones."""
    report = BatchReport()
    claimed: list[CallbackEvent] = []
    verify: list[Item] = []
    try:
        busy, claimed = _claim(event_id, size)
        report.claimed = len(claimed)
        if busy:
            report.own = Outcome.QUEUED  # in another worker's hands (a batch, a verification): theirs to finish
        credit, verify, fallback = _classify(claimed)
        report.fallback += fallback
        with transaction.atomic():
            _apply_safely(credit, report)
    except Exception:  # the database went away mid-batch, or a bug: every delivery on its own, as before
        logger.exception("Callback batch from #%s failed; %s deliveries go one by one", event_id, len(claimed))
        return BatchReport(own=None, claimed=len(claimed), fallback=[e.pk for e in claimed if e.pk != event_id])
    if verify:
        _apply_safely(_verified(verify, report), report)
    if event_id is not None and any(e.pk == event_id for e in claimed):
        report.own = report.outcomes.get(event_id)  # None when it went to the per-event path
    report.fallback = [pk for pk in report.fallback if pk != event_id]
    logger.info(
        "Callback batch from #%s: %s claimed, %s settled together, %s one by one",
        event_id, len(claimed), len(report.outcomes), len(report.fallback),
    )  # fmt: skip
    return report


def _payment_kinds() -> Q:
    """The inbox rows the batch takes: payment callbacks of the configured collection providers."""
    parts = [
        Q(provider=code, kind__in=kinds)
        for code, cls in PROVIDER_CLASSES.items()
        if code in settings.PAYMENT_PROVIDERS
        and (kinds := [r.kind for r in cls.callback_routes if r.role == CallbackRole.PAYMENT])
    ]
    return reduce(lambda a, b: a | b, parts, Q(pk__in=[]))


def _claim(
    event_id: int | None, size: int
) -> tuple[bool, list[CallbackEvent]]:  # (the task's event is busy, the batch)
    """Take the batch's inbox rows, in a short transaction of its own: the task's own event first (when free and
    for the batch), then the oldest pending ones by primary key (the status index's order, so the scan stops at
    `size`), locked with SKIP LOCKED so that two workers claiming at once take different rows. The claim is
    committed as the per-event path commits a delivery it is about to verify: its attempt counted (only events
    never tried are claimed, so no other batch takes them) and due for the sweeper after
    CALLBACK_RETRY_GRACE_SECONDS, in case this worker dies (their own tasks leave them to it: see `busy`).

    Why not keep the rows locked until the credit commits: the per-event path (the sweeper, a replay) locks the
    payment first and writes its event row last; a batch holding event rows while it waits for payments would
    deadlock with it. So the apply locks payments first, and writes the event rows last, as that path does.
    SQLite has no row locks (its writers are serialised): there Django leaves SKIP LOCKED out."""
    rows = CallbackEvent.objects.select_for_update(skip_locked=True)
    eligible = Q(status=CallbackEvent.Status.RECEIVED, attempts=0) & _payment_kinds()
    now = timezone.now()
    with transaction.atomic():
        own = rows.filter(pk=event_id).first() if event_id is not None else None
        mine = own is not None and own.status == CallbackEvent.Status.RECEIVED and batch_takes(own)
        events = [own] if own is not None and mine and own.attempts == 0 else []
        others = rows.filter(eligible).exclude(pk=event_id) if event_id is not None else rows.filter(eligible)
        events += others.order_by("pk")[: max(0, size - len(events))]
        due = now + timedelta(seconds=settings.CALLBACK_RETRY_GRACE_SECONDS)
        CallbackEvent.objects.filter(pk__in=[e.pk for e in events]).update(attempts=F("attempts") + 1,
                                                                            next_attempt_at=due)  # fmt: skip
    for event in events:
        event.attempts, event.next_attempt_at = event.attempts + 1, due
    # Another worker has the task's event in hand: locked by its claim, or claimed (or being verified) and not
    # yet due for the sweeper, which finishes it if that worker dies.
    busy = own is None or (mine and own.attempts > 0 and own.next_attempt_at is not None and own.next_attempt_at > now)
    return busy, events


def batch_takes(event: CallbackEvent) -> bool:
    """A delivery the drain's claim takes (`_payment_kinds`): a payment callback of a configured collection provider."""
    cls = PROVIDER_CLASSES.get(event.provider)
    return (
        cls is not None
        and event.provider in settings.PAYMENT_PROVIDERS
        and (cls.callback_role(event.kind) == CallbackRole.PAYMENT)
    )


def _classify(events: list[CallbackEvent]) -> tuple[list[Item], list[Item], list[int]]:
    """The shared steps (callback_steps) for the batch: (credit now, verify first, per-event path)."""
    staged: list[tuple[CallbackEvent, Delivery, ProviderResult]] = []
    fallback: list[int] = []
    for event in events:
        try:
            provider = PAYMENT.provider(event)
            body = event.body.encode()
            token = url_token_check(event, provider)
            trust = event_trust(event, provider, body, token, False)
            if trust == CallbackTrust.REJECTED:
                fallback.append(event.pk)  # its 401 and record are the per-event path's
                continue
            parsed = PAYMENT.parse(provider, event, body)
            event.our_reference, event.provider_reference = parsed.our_reference, parsed.provider_reference
            staged.append((event, Delivery(event, provider, body, token, trust, parsed.value), parsed.value))
        except Exception:  # malformed, or an adapter's bug: the per-event path records which
            fallback.append(event.pk)
    named = _payments_named([(e.provider, r) for e, _, r in staged])
    credit: list[Item] = []
    verify: list[Item] = []
    for (event, delivery, result), payment in zip(staged, named, strict=True):
        token_payment = delivery.token.payment
        if token_payment is not None and payment is not None and payment.pk != token_payment.pk:
            fallback.append(event.pk)  # the URL's secret belongs to another payment: held by the per-event path
            continue
        payment = token_payment or payment
        if payment is None:
            fallback.append(event.pk)  # unknown reference: rejected there
            continue
        event.payment = payment
        item = Item(event=event, claimed=result, payment=payment)
        if delivery.on_its_word and result.status == PaymentStatus.SUCCEEDED:
            item.result, item.cause = result, f"authenticated callback #{event.pk} (batch)"
            credit.append(item)
        else:
            verify.append(item)
    return credit, verify, fallback


def _payments_named(named: list[tuple[str, ProviderResult]]) -> list[Payment | None]:
    """payment_for_result for many callbacks in one query: the newest payment of the provider whose reference,
    external id or provider reference the callback names."""
    ours = {r.our_reference for _, r in named if r.our_reference}
    theirs = {r.provider_reference for _, r in named if r.provider_reference}
    if not ours and not theirs:
        return [None] * len(named)
    found = list(
        Payment.objects.filter(
            Q(reference__in=ours) | Q(external_id__in=ours) | Q(provider_reference__in=theirs),
            provider__in={code for code, _ in named},
        )
    )

    def pick(code: str, result: ProviderResult) -> Payment | None:
        matches = [
            p
            for p in found
            if p.provider == code
            and (
                (result.our_reference and result.our_reference in (p.reference, p.external_id))
                or (result.provider_reference and p.provider_reference == result.provider_reference)
            )
        ]
        return max(matches, key=lambda p: p.pk, default=None)

    return [pick(code, result) for code, result in named]


def _verified(items: list[Item], report: BatchReport) -> list[Item]:
    """Ask the provider about each (CALLBACK_VERIFY_CONCURRENCY at a time) and keep those with a word to apply;
    the others are settled here as the per-event path would (failed: retried; not confirmed: held)."""

    def ask(item: Item) -> tuple[Item, ProviderResult | None, str]:
        try:
            return item, verification_ask(item.event, item.payment, item.claimed), ""
        except Exception as exc:
            logger.exception("Verifying callback %s failed", item.event.pk)
            item.event.traceback = traceback.format_exc()[-TRACEBACK_CHARS:]
            return item, None, f"{type(exc).__name__}: {exc}"

    def ask_in_thread(item: Item) -> tuple[Item, ProviderResult | None, str]:
        try:
            return ask(item)
        finally:
            connection.close()  # the thread's own connection (its status-query history row)

    width = min(settings.CALLBACK_VERIFY_CONCURRENCY, len(items))
    if width <= 1:
        answers = [ask(item) for item in items]
    else:
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="callback-verify") as pool:
            answers = list(pool.map(ask_in_thread, items))
    ready: list[Item] = []
    for item, said, error in answers:
        event = item.event
        if said is None:
            callback_event_mark(event, CallbackEvent.Status.FAILED, error=error)
            report.outcomes[event.pk] = Outcome.FAILED
            continue
        verdict = verification_verdict(event, item.payment, item.claimed, said)
        if verdict.result is None:
            report.outcomes[event.pk] = held(event, verdict.why, "").code
            continue
        item.result, item.cause, item.note = verdict.result, f"{verdict.cause} (batch)", verdict.note
        ready.append(item)
    return ready


def _apply_safely(items: list[Item], report: BatchReport) -> None:
    """Apply the items in one savepoint; one that raises is dropped (to the per-event path) and the rest re-run."""
    pending = list(items)
    while pending:
        try:
            with transaction.atomic():
                report.outcomes.update(_apply(pending))
            return
        except _ItemFailed as failed:
            logger.warning("Callback %s left the batch (%s)", failed.item.event.pk, failed.__cause__, exc_info=True)
            pending.remove(failed.item)
            report.fallback.append(failed.item.event.pk)
        except Exception:
            if connection.needs_rollback:
                raise  # the whole transaction is gone (a deadlock, a cut): the caller's fallback takes all
            logger.exception("Callback batch write failed; %s deliveries go one by one", len(pending))
            report.fallback += [item.event.pk for item in pending]
            return


def _apply(items: list[Item]) -> dict[int, Outcome]:
    """payment_apply_result's rules for the whole batch, under the payments' row locks (taken in primary-key
    order). Successes of open payments are credited in bulk; duplicates settle as `ignored`; mismatches go to
    review; every other transition (a failure, a late success) runs payment_apply_result itself, in order."""
    now = timezone.now()
    payments = {p.pk: p for p in Payment.objects.select_for_update().filter(
        pk__in={i.payment.pk for i in items}).order_by("pk")}  # fmt: skip
    outcomes: dict[int, Outcome] = {}
    credits: list[Item] = []
    one_by_one: list[Item] = []
    odd: set[int] = set()  # payments with a delivery on payment_apply_result: their later ones follow in order
    for item in items:
        try:
            outcomes[item.event.pk] = _plan(item, payments[item.payment.pk], now, credits, one_by_one, odd)
        except Exception as exc:
            raise _ItemFailed(item) from exc
    completions = donations_complete(donation_ids=[item.payment.donation_id for item in credits])
    history: list[PaymentHistory] = []
    notices: list[tuple[Donation, str, str]] = []
    for item, completion in zip(credits, completions, strict=True):
        payment = payments[item.payment.pk]
        if completion.credited:
            notices.append((completion.donation, method_label(payment.provider, payment.channel), payment.msisdn))
        else:  # another payment already paid this donation: recorded, never credited twice, shown to a person
            payment.needs_review = True
            logger.error("Payment %s succeeded but donation %s was already paid by another payment; flagged for "
                         "review", payment.reference, completion.donation.reference)  # fmt: skip
        logger.info("Payment %s %s -> %s (batch)", payment.reference, item.previous, payment.status)
        summary = f"{item.previous} → {PaymentStatus.SUCCEEDED}"
        history.append(PaymentHistory(payment_id=payment.pk, kind=PaymentHistory.Kind.TRANSITION,
                                      summary=summary, cause=fit(PaymentHistory, "cause", item.cause)))  # fmt: skip
    rows_update({payments[i.payment.pk] for i in credits}, PAYMENT_FIELDS)
    PaymentHistory.objects.bulk_create(history)
    notices_record_credits(credits=notices)  # the outbox: commits with the credits, or not at all
    if notices:  # one relay for the batch (coalesced: none if one is already waiting), not a task per credit
        transaction.on_commit(notices_relay_queue)
    for item in one_by_one:
        try:
            with transaction.atomic():
                outcomes[item.event.pk] = _apply_one(item)
        except Exception as exc:
            raise _ItemFailed(item) from exc
    # The inbox rows last, as the per-event path writes its own (see _claim).
    later = {id(item) for item in one_by_one}
    rows_update([i.event for i in items if id(i) not in later], MARK_FIELDS)
    return outcomes


def _plan(
    item: Item, payment: Payment, now: datetime, credits: list[Item], one_by_one: list[Item], odd: set[int]
) -> Outcome:
    event, result = item.event, item.result
    assert result is not None
    mismatch = result_mismatch(payment, result)
    if payment.pk in odd or (not mismatch and (result.status != PaymentStatus.SUCCEEDED or (
            payment.is_terminal and payment.status != Payment.Status.SUCCEEDED))):  # fmt: skip
        odd.add(payment.pk)
        one_by_one.append(item)
        return Outcome.ACCEPTED
    if mismatch:
        logger.error("Payment %s: %s; not applied, sent to review", payment.reference, mismatch)
        callback_event_stamp(event, CallbackEvent.Status.REVIEW, error=mismatch)
        return Outcome.REVIEW
    if payment.status == Payment.Status.SUCCEEDED:
        detail = "; ".join(part for part in (item.note, f"already {payment.status}") if part)
        callback_event_stamp(event, CallbackEvent.Status.IGNORED, error=detail)
        return Outcome.ACCEPTED
    item.previous = payment.status
    payment.status = Payment.Status.SUCCEEDED
    payment.receipt = result.receipt[:100] or payment.receipt
    payment.failure_reason = ""
    payment.completed_at = payment.updated_at = now
    payment.next_check_at = None
    if result.provider_reference and not payment.provider_reference:
        payment.provider_reference = result.provider_reference
    callback_event_stamp(event, CallbackEvent.Status.PROCESSED, error=item.note)
    credits.append(item)
    return Outcome.ACCEPTED


def _apply_one(item: Item) -> Outcome:
    """A transition the bulk path leaves to payment_apply_result (it locks and checks again)."""
    assert item.result is not None
    event = item.event
    outcome = payment_apply_result(payment_id=item.payment.pk, result=item.result, verified=True, cause=item.cause)
    if outcome.status == Applied.REVIEW:
        return held(event, outcome.detail).code
    status = CallbackEvent.Status.PROCESSED if outcome.changed else CallbackEvent.Status.IGNORED
    error = "; ".join(part for part in (item.note, "" if outcome.changed else outcome.detail) if part)
    callback_event_mark(event, status, error=error)
    return Outcome.ACCEPTED
