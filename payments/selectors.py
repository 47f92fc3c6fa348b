"""Reads for the admin, the dashboard and the settlement file: queries and the plain dataclasses they return,
no writes. Kept apart from the services so a page can be built without touching the rules that move money."""

import io
from dataclasses import asdict, dataclass, fields
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet, Sum
from django.utils import timezone

from config.csv_safety import SafeCsvWriter
from patients.models import PayoutDestinationChange
from payments.models import AuditEntry, CallbackEvent, Payment, Refund

if TYPE_CHECKING:
    from payments.models import LedgerCheck
    from payments.services.money_out_results import Waiting


def provider_health(*, provider_code: str, public_name: str) -> dict:
    last = CallbackEvent.objects.filter(provider=provider_code).aggregate(at=Max("received_at"))["at"]
    pending = Payment.objects.filter(provider=provider_code, status=Payment.Status.PENDING).count()
    return {
        "status": "healthy",
        "provider": public_name,
        "timestamp": timezone.now().isoformat(),
        "last_callback_at": last.isoformat() if last else None,
        "pending_payments": pending,
    }


def payment_latest_for_donation(*, donation_id: int) -> Payment | None:
    return Payment.objects.filter(donation_id=donation_id).order_by("-pk").first()


def payments_report(*, start: datetime, end: datetime) -> dict:
    from payments.services.watchdog import STUCK_AFTER

    events = CallbackEvent.objects.filter(received_at__gte=start, received_at__lt=end)
    return {
        "rows": [asdict(figures) for figures in rail_figures(start=start, end=end)],
        "stuck_pending": Payment.objects.filter(
            status__in=OPEN_PAYMENT_STATUSES, created_at__lt=timezone.now() - STUCK_AFTER
        ).count(),
        "needs_review": Payment.objects.filter(needs_review=True).count(),
        "events": dict(events.values_list("status").annotate(n=Count("pk")).order_by()),
    }


def callback_events(*, status: str | None = None) -> QuerySet[CallbackEvent]:
    qs = CallbackEvent.objects.order_by("pk")
    return qs.filter(status=status) if status else qs


@dataclass(frozen=True)
class SettlementRow:
    """One line a finance person matches against the provider's statement."""

    time: datetime
    provider: str
    kind: str  # payment | refund
    status: str
    reference: str  # ours (the payment's or the refund's)
    donation: str
    provider_reference: str
    receipt: str
    amount: Decimal  # negative for money that went back (a refund)
    currency: str
    channel: str


SETTLEMENT_COLUMNS = [f.name for f in fields(SettlementRow)]
SETTLED_PAYMENT_STATUSES = [
    Payment.Status.SUCCEEDED,
    Payment.Status.FAILED,
    Payment.Status.CANCELLED,
    Payment.Status.EXPIRED,
]


def settlement_rows(*, start: datetime, end: datetime, provider: str | None = None) -> list[SettlementRow]:
    """Every payment that ended (succeeded, failed, cancelled, expired) and every refund that ended in
    [start, end), by the time it ended, oldest first. Failed ones carry amount 0: no money moved."""
    payments = Payment.objects.filter(
        completed_at__gte=start, completed_at__lt=end, status__in=SETTLED_PAYMENT_STATUSES
    ).select_related("donation")
    refunds = Refund.objects.filter(
        completed_at__gte=start, completed_at__lt=end, status__in=[Refund.Status.REFUNDED, Refund.Status.FAILED]
    ).select_related("donation")
    if provider:
        payments = payments.filter(provider=provider)
        refunds = refunds.filter(provider=provider)
    rows = [
        SettlementRow(
            time=p.completed_at or p.updated_at,
            provider=p.provider,
            kind="payment",
            status=p.status,
            reference=p.reference,
            donation=p.donation.reference,
            provider_reference=p.provider_reference or "",
            receipt=p.receipt,
            amount=p.amount if p.status == Payment.Status.SUCCEEDED else Decimal("0"),
            currency=p.currency,
            channel=p.channel,
        )
        for p in payments
    ]
    rows += [
        SettlementRow(
            time=r.completed_at or r.updated_at,
            provider=r.provider,
            kind="refund",
            status=r.status,
            reference=r.reference,
            donation=r.donation.reference,
            provider_reference=r.provider_reference or "",
            receipt=r.receipt,
            amount=-r.amount if r.status == Refund.Status.REFUNDED else Decimal("0"),
            currency=r.currency,
            channel="manual" if r.manual else "",
        )
        for r in refunds
    ]
    return sorted(rows, key=lambda row: (row.time, row.reference))


def settlement_totals(rows: list[SettlementRow]) -> dict[tuple[str, str], Decimal]:
    """Net money per (provider, currency): what the provider's statement should show for the window."""
    totals: dict[tuple[str, str], Decimal] = {}
    for row in rows:
        key = (row.provider, row.currency)
        totals[key] = totals.get(key, Decimal("0")) + row.amount
    return totals


def settlement_csv(rows: list[SettlementRow]) -> str:
    """The rows as CSV (a header, then one line each), in a fixed column order."""
    out = io.StringIO()
    writer = SafeCsvWriter(out)  # no cell a spreadsheet would run as a formula
    writer.writerow(SETTLEMENT_COLUMNS)
    for row in rows:
        writer.writerow(
            [
                row.time.isoformat(),
                row.provider,
                row.kind,
                row.status,
                row.reference,
                row.donation,
                row.provider_reference,
                row.receipt,
                f"{row.amount:.2f}",
                row.currency,
                row.channel,
            ]
        )
    return out.getvalue()


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # "start", "status_query", "transition", "callback", "audit", "scheduled"
    summary: str
    detail: str = ""
    event_id: int | None = None  # a callback event: its admin page and replay button


def payment_timeline(*, payment: Payment) -> list[TimelineEntry]:
    """Everything that happened to a payment, oldest first, and what happens next.

    The charge request, every callback delivery with its verdict, every status query and the provider's
    answer, each state change with its cause, what people did to it, and the next scheduled check."""
    entries = [
        TimelineEntry(at=h.at, kind=h.kind, summary=h.summary, detail=f"cause: {h.cause}" if h.cause else "")
        for h in payment.history.all()
    ]
    entries += [
        TimelineEntry(
            at=e.received_at,
            kind="callback",
            summary=f"callback #{e.pk} ({e.kind}) from {e.client_ip or 'unknown address'}: {e.status}"
            + (f", {e.trust}" if e.trust else ""),
            detail=e.error,
            event_id=e.pk,
        )
        for e in payment.callback_events.order_by("received_at", "pk")
    ]
    entries += [
        TimelineEntry(at=a.at, kind="audit", summary=f"{a.actor or 'system'}: {a.action}", detail=a.detail)
        for a in AuditEntry.objects.filter(target=f"payment {payment.reference}")
    ]
    entries.sort(key=lambda entry: entry.at)
    if not payment.is_terminal and payment.next_check_at:
        entries.append(
            TimelineEntry(
                at=payment.next_check_at,
                kind="scheduled",
                summary=f"next status query (check {payment.check_count + 1} on the reconciliation ladder)",
                detail="the payment expires if the provider has not confirmed it by "
                f"{payment.created_at + timedelta(seconds=settings.PAYMENT_EXPIRY_SECONDS):%Y-%m-%d %H:%M}",
            )
        )
    return entries


# --- the admin's dashboard -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RailFigures:
    """Payments started in a window on one rail in one currency, by how they stand now."""

    provider: str
    currency: str
    completed: int
    completed_amount: Decimal
    failed: int
    pending: int


@dataclass(frozen=True)
class ProviderPulse:
    provider: str
    last_callback_at: datetime | None
    events: int  # callbacks received in the error window
    errors: int  # of those: failed, rejected, held for review or dead

    @property
    def error_rate(self) -> Decimal | None:
        return (Decimal(self.errors) / self.events * 100).quantize(Decimal("0.1")) if self.events else None


@dataclass(frozen=True)
class AttentionCounts:
    """What waits for a person, and where (watchdog thresholds: payments.services.watchdog)."""

    stuck_before: datetime  # pending payments created before this are stuck
    stuck: int
    payments_review: int
    callbacks_review: int
    inbox_unsettled: int  # received or failed: the sweeper will run them again
    inbox_dead: int
    payouts_awaiting_approval: int
    refunds_awaiting_approval: int
    destination_changes_awaiting_approval: int  # where payouts go (patients.destinations)
    payouts_review: int
    refunds_review: int
    money_out: dict[str, "Waiting"]  # "payout", "refund": what of each waits for a person
    last_ledger_check: "LedgerCheck | None"


def dashboard_windows(*, now: datetime) -> dict[str, tuple[datetime, datetime]]:
    """Today, the last 7 and the last 30 days, each from a local midnight (TIME_ZONE) up to now."""
    return {
        "Today": (local_midnight(now, days_back=0), now),
        "Last 7 days": (local_midnight(now, days_back=6), now),
        "Last 30 days": (local_midnight(now, days_back=29), now),
    }


def local_midnight(now: datetime, *, days_back: int) -> datetime:
    """The start of the local day `days_back` days before `now`'s (calendar days, so right across DST)."""
    day = timezone.localdate(now) - timedelta(days=days_back)
    return timezone.make_aware(datetime.combine(day, time.min))


FAILED_PAYMENT_STATUSES = [Payment.Status.FAILED, Payment.Status.CANCELLED, Payment.Status.EXPIRED]
OPEN_PAYMENT_STATUSES = [Payment.Status.PENDING, Payment.Status.CREATED]


def rail_figures(*, start: datetime, end: datetime) -> list[RailFigures]:
    rows = (
        Payment.objects.filter(created_at__gte=start, created_at__lt=end)
        .values("provider", "currency")
        .annotate(
            completed=Count("pk", filter=Q(status=Payment.Status.SUCCEEDED)),
            completed_amount=Sum("amount", filter=Q(status=Payment.Status.SUCCEEDED)),
            failed=Count("pk", filter=Q(status__in=FAILED_PAYMENT_STATUSES)),
            pending=Count("pk", filter=Q(status__in=OPEN_PAYMENT_STATUSES)),
        )
        .order_by("provider", "currency")
    )
    return [
        RailFigures(
            provider=row["provider"],
            currency=row["currency"],
            completed=row["completed"],
            completed_amount=row["completed_amount"] or Decimal("0"),
            failed=row["failed"],
            pending=row["pending"],
        )
        for row in rows
    ]


def attention_counts(*, now: datetime) -> AttentionCounts:
    from payments.models import LedgerCheck, Payout
    from payments.services.money_out_results import waiting_for_a_person
    from payments.services.payouts import FLOW as PAYOUTS
    from payments.services.refunds import FLOW as REFUNDS
    from payments.services.watchdog import STUCK_AFTER

    events = CallbackEvent.objects.values_list("status").annotate(n=Count("pk")).order_by()
    by_status = dict(events)
    return AttentionCounts(
        stuck_before=now - STUCK_AFTER,
        stuck=Payment.objects.filter(status__in=OPEN_PAYMENT_STATUSES, created_at__lt=now - STUCK_AFTER).count(),
        payments_review=Payment.objects.filter(needs_review=True).count(),
        callbacks_review=by_status.get(CallbackEvent.Status.REVIEW, 0),
        inbox_unsettled=by_status.get(CallbackEvent.Status.RECEIVED, 0) + by_status.get(CallbackEvent.Status.FAILED, 0),
        inbox_dead=by_status.get(CallbackEvent.Status.DEAD, 0),
        payouts_awaiting_approval=Payout.objects.filter(status=Payout.Status.REQUESTED).count(),
        refunds_awaiting_approval=Refund.objects.filter(status=Refund.Status.REQUESTED).count(),
        destination_changes_awaiting_approval=PayoutDestinationChange.objects.filter(
            status=PayoutDestinationChange.Status.REQUESTED
        ).count(),
        payouts_review=Payout.objects.filter(needs_review=True).count(),
        refunds_review=Refund.objects.filter(needs_review=True).count(),
        money_out={flow.name: waiting_for_a_person(flow, now=now) for flow in (PAYOUTS, REFUNDS)},
        last_ledger_check=LedgerCheck.objects.first(),
    )


def provider_pulse(*, now: datetime, window: timedelta = timedelta(hours=24)) -> list[ProviderPulse]:
    """Per configured provider: its last callback, and how many of the window's callbacks went wrong."""
    from payments.services.watchdog import ERROR_STATUSES

    stats: dict[str, dict[str, Any]] = {
        row["provider"]: dict(row)
        for row in CallbackEvent.objects.values("provider")
        .annotate(
            last=Max("received_at"),
            events=Count("pk", filter=Q(received_at__gte=now - window)),
            errors=Count("pk", filter=Q(received_at__gte=now - window, status__in=ERROR_STATUSES)),
        )
        .order_by()
    }
    return [
        ProviderPulse(
            provider=code,
            last_callback_at=stats.get(code, {}).get("last"),
            events=stats.get(code, {}).get("events", 0),
            errors=stats.get(code, {}).get("errors", 0),
        )
        for code in settings.PAYMENT_PROVIDERS
    ]


def received_per_day(*, now: datetime, days: int = 30) -> dict[str, list[tuple[datetime, Decimal]]]:
    """Money received (succeeded payments, by when they completed) per local day and currency, oldest day
    first, every day present (zero when nothing came in).

    Local days are cut in Python and summed in one query (one conditional Sum per day), not with TruncDate:
    MySQL converts time zones only when its time zone tables are loaded, and answers NULL when they are not."""
    starts = [local_midnight(now, days_back=offset) for offset in range(days - 1, -1, -1)]
    bounds = list(zip(starts, starts[1:] + [now], strict=True))
    sums = {
        f"d{i}": Sum("amount", filter=Q(completed_at__gte=start, completed_at__lt=end))
        for i, (start, end) in enumerate(bounds)
    }
    rows: list[dict[str, Any]] = [
        dict(row)
        for row in Payment.objects.filter(
            status=Payment.Status.SUCCEEDED, completed_at__gte=starts[0], completed_at__lt=now
        )
        .values("currency")
        .annotate(**sums)
        .order_by("currency")
    ]
    return {
        row["currency"]: [(start, row[f"d{i}"] or Decimal("0")) for i, (start, _end) in enumerate(bounds)]
        for row in rows
    }
