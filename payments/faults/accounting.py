"""What became of every callback (Django ORM): a verdict per delivery (credited once, held for review, lost,
credited twice), the figures per rail, the ledger's own consistency, and the evidence a failure report shows
(answers, inbox rows, errors.log lines, gunicorn's log, the answers given during an outage).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from payments.faults.killer import Window
from payments.faults.storm import RAILS, Attempt, Delivery, DeliveryRecord


@dataclass(frozen=True)
class Verdict:
    credits: int  # how many times the delivery's money landed in the ledger (payout: paid = 1)
    flagged: bool  # the payment, donation or payout itself is marked needs_review
    review_event: bool  # an inbox row for this callback ended in `review`
    state: str  # a one-line description for the report

    @property
    def held_for_review(self) -> bool:
        return self.flagged or (self.credits == 0 and self.review_event)


@dataclass
class RailFigures:
    rail: str
    deliveries: int = 0
    sends: int = 0
    killed: int = 0  # attempts that got no HTTP answer (the worker died under them, or nothing listened)
    acknowledged: int = 0
    credited: int = 0  # exactly once, nothing flagged
    review: int = 0  # held for review (flagged, or not credited with its inbox row in review)
    lost: int = 0  # acknowledged, yet neither credited nor held for review
    unacknowledged: int = 0  # never got a 2xx: the provider still has it
    extra: int = 0  # credited more than once
    noisy: int = 0  # credited once, but a repeat of it left an inbox row in `review` (a person will look)
    lost_keys: list[str] = field(default_factory=list)

    def add(self, other: RailFigures) -> None:
        for name in ("deliveries", "sends", "killed", "acknowledged", "credited", "review", "lost"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.unacknowledged += other.unacknowledged
        self.extra += other.extra
        self.noisy += other.noisy
        self.lost_keys += other.lost_keys


def verdict(delivery: Delivery) -> Verdict:
    if delivery.rail in ("azampay", "stk", "mtn", "airtel"):
        return _payment_verdict(delivery.key)
    if delivery.rail == "c2b":
        return _c2b_verdict(delivery.key)
    return _payout_verdict(delivery.key)


def _payment_verdict(reference: str) -> Verdict:
    from donor.models import Allocation
    from payments.models import Payment

    payment = Payment.objects.select_related("donation").get(reference=reference)
    donation = payment.donation
    allocations = Allocation.objects.filter(donation=donation).count()
    settled = payment.status == Payment.Status.SUCCEEDED and donation.status == donation.Status.COMPLETED
    flagged = payment.needs_review or donation.needs_review
    state = f"payment {payment.status}, donation {donation.status}, {allocations} allocation(s)"
    return Verdict(allocations if settled else 0, flagged, _has_review_event(payment=payment), state)


def _c2b_verdict(trans_id: str) -> Verdict:
    from donor.models import Allocation, Donation
    from payments.models import Payment

    payments = list(Payment.objects.select_related("donation").filter(provider="mpesa", provider_reference=trans_id))
    credits = sum(
        Allocation.objects.filter(donation=p.donation).count()
        for p in payments
        if p.status == Payment.Status.SUCCEEDED and p.donation.status == Donation.Status.COMPLETED
    )
    flagged = any(p.needs_review or p.donation.needs_review for p in payments)
    state = f"{len(payments)} payment(s) for TransID: " + (
        ", ".join(f"{p.status}/{p.donation.status}" for p in payments) or "none"
    )
    return Verdict(credits, flagged, _has_review_event(trans_id), state)


def _payout_verdict(reference: str) -> Verdict:
    from payments.models import Payout

    payout = Payout.objects.get(reference=reference)
    paid = 1 if payout.status == Payout.Status.PAID else 0
    return Verdict(paid, payout.needs_review, _has_review_event(reference), f"payout {payout.status}")


def _has_review_event(key: str = "", *, payment: Any = None) -> bool:
    from payments.models import CallbackEvent

    events = CallbackEvent.objects.filter(status=CallbackEvent.Status.REVIEW)
    return (
        events.filter(payment=payment).exists() if payment is not None else events.filter(body__contains=key).exists()
    )


def account(records: Iterable[DeliveryRecord]) -> list[RailFigures]:
    """What became of each delivery, per rail (C2B split by MSISDN form), in a stable order."""
    rows: dict[str, RailFigures] = {}
    for record in records:
        figures = rows.setdefault(record.delivery.label, RailFigures(record.delivery.label))
        result = verdict(record.delivery)
        figures.deliveries += 1
        figures.sends += len(record.attempts)
        figures.killed += sum(attempt.status is None for attempt in record.attempts)
        figures.acknowledged += record.acknowledged
        figures.unacknowledged += not record.acknowledged
        if result.held_for_review:
            figures.review += 1
        elif result.credits > 1:
            figures.extra += 1
        elif result.credits == 1:
            figures.credited += 1
            figures.noisy += result.review_event
        elif record.acknowledged:
            figures.lost += 1
            figures.lost_keys.append(record.delivery.key)
    order = {rail: i for i, rail in enumerate(RAILS)}
    return sorted(rows.values(), key=lambda f: (order.get(f.rail.split()[0], 9), f.rail))


def totals(rows: Iterable[RailFigures]) -> RailFigures:
    total = RailFigures("total")
    for row in rows:
        total.add(row)
    return total


def figures_table(rows: list[RailFigures], kills: int) -> str:
    """The table the bench prints; `kills` column: per rail the attempts a kill (or an outage) left without an
    HTTP answer, on the total line the SIGKILLs sent."""
    header = ("rail", "deliveries", "kills", "acknowledged", "credited", "held for review", "lost", "unacked", "extra")
    total = totals(rows)
    lines = [
        (r.rail, r.deliveries, r.killed, r.acknowledged, r.credited, r.review, r.lost, r.unacknowledged, r.extra)
        for r in rows
    ]
    lines.append(
        ("total", total.deliveries, kills, total.acknowledged, total.credited, total.review, total.lost)
        + (total.unacknowledged, total.extra)
    )
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines, strict=True)]
    render = [
        "  ".join(
            str(cell).ljust(w) if i == 0 else str(cell).rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in (header, *lines)
    ]
    return "\n".join(render)


def figures_line(name: str, rows: list[RailFigures], kills: int) -> str:
    total = totals(rows)
    return (
        f"FIGURES {name}: deliveries={total.deliveries} kills={kills} acknowledged={total.acknowledged} "
        f"credited={total.credited} review={total.review} lost={total.lost} unacknowledged={total.unacknowledged} "
        f"extra={total.extra} credited_with_review_row={total.noisy}"
    )


def ledger_problems() -> list[str]:
    """Half-written or double credits anywhere in the database (independent of what the storm sent)."""
    from django.db.models import Count, Q

    from donor.models import Allocation, Donation
    from donor.selectors import ledger_drift
    from payments.models import Payment

    problems = []
    succeeded = Payment.objects.filter(status=Payment.Status.SUCCEEDED)
    unfinished = succeeded.exclude(donation__status=Donation.Status.COMPLETED).count()
    if unfinished:
        problems.append(f"{unfinished} succeeded payment(s) whose donation is not completed")
    bare = Donation.objects.filter(status=Donation.Status.COMPLETED, allocations__isnull=True).count()
    if bare:
        problems.append(f"{bare} completed donation(s) without an allocation")
    orphans = Allocation.objects.exclude(donation__status=Donation.Status.COMPLETED).count()
    if orphans:
        problems.append(f"{orphans} allocation(s) on a donation that is not completed")
    unpaid = Donation.objects.filter(status=Donation.Status.COMPLETED).exclude(
        payments__status=Payment.Status.SUCCEEDED
    )
    if unpaid.count():
        problems.append(f"{unpaid.count()} completed donation(s) without a succeeded payment")
    twice = (
        Donation.objects.annotate(paid=Count("payments", filter=Q(payments__status=Payment.Status.SUCCEEDED)))
        .filter(paid__gt=1)
        .count()
    )
    if twice:
        problems.append(f"{twice} donation(s) with more than one succeeded payment")
    problems += [f"ledger drift {d.patient.code}: cached {d.cached} vs ledger {d.ledger}" for d in ledger_drift()]
    return problems


# --- evidence --------------------------------------------------------------------------------------------


def inbox_summary() -> str:
    """CallbackEvent rows per provider/kind and status, e.g. `mpesa/c2b_confirmation: processed=40 received=3`."""
    from django.db.models import Count

    from payments.models import CallbackEvent

    rows = CallbackEvent.objects.values("provider", "kind", "status").annotate(n=Count("id")).order_by("provider")
    grouped: dict[str, list[str]] = {}
    for row in rows:
        grouped.setdefault(f"{row['provider']}/{row['kind']}", []).append(f"{row['status']}={row['n']}")
    return "\n".join(f"  {kind}: {' '.join(sorted(counts))}" for kind, counts in sorted(grouped.items()))


def delivery_story(record: DeliveryRecord) -> str:
    """One lost delivery: its answers, what the inbox holds for it, and the state of what it should credit."""
    from payments.models import CallbackEvent

    delivery = record.delivery
    events = CallbackEvent.objects.filter(body__contains=delivery.marker).order_by("pk")
    answers = Counter(a.describe()[:90] for a in record.attempts)
    lines = [f"{delivery.label} {delivery.key}: {verdict(delivery).state}"]
    lines += [f"    answered {n}x: {text}" for text, n in answers.most_common(4)]
    lines += [
        f"    event #{e.pk} {e.status} attempts={e.attempts} duplicate_of={e.duplicate_of_id} error={e.error[:120]!r}"
        for e in events
    ]
    return "\n".join(lines)


def lost_stories(records: Iterable[DeliveryRecord], limit: int = 6) -> str:
    """Acknowledged deliveries that credited nothing and wait for nobody: what they were answered, their rows."""

    def is_lost(record: DeliveryRecord) -> bool:
        result = verdict(record.delivery)
        return record.acknowledged and result.credits == 0 and not result.held_for_review

    return stories([record for record in records if is_lost(record)], limit)


def review_stories(records: Iterable[DeliveryRecord], limit: int = 4) -> str:
    """Deliveries held for review, or credited with an inbox row in review: why (the rows' errors)."""

    def in_review(record: DeliveryRecord) -> bool:
        result = verdict(record.delivery)
        return result.held_for_review or result.review_event

    return stories([record for record in records if in_review(record)], limit)


def stories(records: list[DeliveryRecord], limit: int) -> str:
    """A few delivery_story()s, spread over the rails."""
    by_rail: dict[str, list[DeliveryRecord]] = {}
    for record in records:
        by_rail.setdefault(record.delivery.label, []).append(record)
    picked = [record for group in by_rail.values() for record in group[: max(1, limit // max(1, len(by_rail)))]]
    return "\n".join(delivery_story(record) for record in picked)


EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Warning|Unavailable|Interrupt))(?::\s?(.*))?$")


def exception_counts(log_dir: Path, limit: int = 8) -> list[tuple[str, int]]:
    """The exception lines of the application's errors.log, most frequent first (numbers elided)."""
    path = log_dir / "errors.log"
    if not path.exists():
        return []
    counts: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        match = EXCEPTION_LINE.match(line.strip())
        if match:
            counts[re.sub(r"\d+", "N", line.strip())[:200]] += 1
    return counts.most_common(limit)


def gunicorn_events(log_path: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    with suppress(OSError):
        for line in log_path.read_text(errors="replace").splitlines():
            for needle in ("was sent SIGKILL", "Booting worker", "WORKER TIMEOUT", "Worker exiting", "Shutting down"):
                if needle in line:
                    counts[needle] += 1
    return counts


def answers_in(records: Iterable[DeliveryRecord], window: Window) -> list[tuple[Delivery, Attempt]]:
    """Every answer (or failure to answer) that arrived while the window's service was down."""
    return [(r.delivery, a) for r in records for a in r.attempts if window.covers(a.finished)]


def answer_kinds(answers: Iterable[tuple[Delivery, Attempt]]) -> Counter[str]:
    """`503 json-error`, `500 json-error`, `200`, `no answer`, `500 html` ... with counts."""
    kinds: Counter[str] = Counter()
    for _, attempt in answers:
        if attempt.status is None:
            kinds["no answer: " + attempt.error.split(":")[0]] += 1
        elif attempt.ok:
            kinds[f"{attempt.status}"] += 1
        else:
            shape = "json-error" if attempt.has_error_shape else attempt.content_type.split(";")[0] or "no type"
            kinds[f"{attempt.status} {shape}"] += 1
    return kinds


def outage_answers(
    records: list[DeliveryRecord], window: Window, *, expected: str, at_least: int = 1
) -> tuple[list[str], str]:
    """(problems, summary) of the answers given while a service was down; requests already in flight when it
    went down count too, and are shown apart. expected: "503" (with the JSON error body) or "2xx"; fewer
    than at_least answers means the outage missed the traffic.

    With "503", a request in flight when the database went down may also be answered 2xx: a 2xx is only ever
    given once its delivery is stored (the inbox row committed; `received` until it settles), and the cut may
    land after that — e.g. in the status query that confirms an STK, MTN or Airtel callback, which the immediate
    task backend runs inside the request and whose failure it does not pass on. The accounting then proves that
    such a delivery was not lost (the sweeper finishes it). A request that started during the outage must get
    the 503."""
    during = answers_in(records, window)
    in_flight = [(d, a) for d, a in during if a.started < window.started]
    summary = (
        f"answers during the {window.name} outage ({window.ended - window.started:.1f} s): "
        f"{dict(answer_kinds(during))}; of these, in flight when it went down: {dict(answer_kinds(in_flight))}"
    )
    problems = []
    if len(during) < at_least:
        problems.append(f"only {len(during)} answers during the {window.name} outage: the scenario proved nothing")
    if expected == "503":
        wrong = [
            (d, a)
            for d, a in during
            if not (a.status == 503 and a.has_error_shape) and not (a.ok and a.started < window.started)
        ]
    else:
        wrong = [(d, a) for d, a in during if not a.ok]
    if wrong:
        by_rail = sorted({d.label for d, _ in wrong})
        example = wrong[0][1].describe()
        problems.append(
            f"{len(wrong)} of {len(during)} answers during the {window.name} outage were not {expected} "
            f"(rails: {', '.join(by_rail)}); e.g. {example}"
        )
    return problems, summary
