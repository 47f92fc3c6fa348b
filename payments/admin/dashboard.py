"""The admin's first page: how much came in, what is stuck, what waits for a person, whether a provider has gone
quiet — each number a link to the filtered list behind it. The figures are selectors (payments.selectors); this
module only turns them into links and a server-rendered SVG chart."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string

from payments.models import CallbackEvent, Payment
from payments.selectors import (
    FAILED_PAYMENT_STATUSES,
    OPEN_PAYMENT_STATUSES,
    attention_counts,
    dashboard_windows,
    provider_pulse,
    rail_figures,
    received_per_day,
)
from payments.services.watchdog import ERROR_STATUSES

CHART_DAYS = 30
PULSE_WINDOW = timedelta(hours=24)
CHART_WIDTH, CHART_HEIGHT, CHART_TOP = 600, 140, 14  # px; CHART_TOP leaves room for the largest day's label


def changelist(model: str, **params: Any) -> str:
    """The admin list of `model` ("payments.payment") filtered by the admin's own query parameters."""
    app_label, model_name = model.split(".")
    url = reverse(f"admin:{app_label}_{model_name}_changelist")
    query = {key: _param(value) for key, value in params.items()}
    return f"{url}?{urlencode(query)}" if query else url


def _param(value: Any) -> str:
    if isinstance(value, datetime):
        return timezone.localtime(value).isoformat(sep=" ", timespec="seconds")
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)  # the admin reads `field__in` as comma-separated values
    return str(value)


@dataclass(frozen=True)
class Bar:
    x: int
    y: int
    width: int
    height: int
    day: datetime
    amount: Decimal
    url: str


def chart_bars(days: list[tuple[datetime, Decimal]], currency: str, now: datetime) -> tuple[list[Bar], Decimal]:
    peak = max((amount for _day, amount in days), default=Decimal("0"))
    slot = CHART_WIDTH // max(len(days), 1)
    bars = []
    for i, (day, amount) in enumerate(days):
        height = int(amount / peak * (CHART_HEIGHT - CHART_TOP)) if peak else 0
        if amount and not height:
            height = 1  # a day with money shows, however small next to the peak
        next_day = days[i + 1][0] if i + 1 < len(days) else now
        bars.append(
            Bar(
                x=i * slot + 1,
                y=CHART_HEIGHT - height,
                width=max(slot - 2, 1),
                height=height,
                day=day,
                amount=amount,
                url=changelist(
                    "payments.payment",
                    status=Payment.Status.SUCCEEDED,
                    currency=currency,
                    completed_at__gte=day,
                    completed_at__lt=next_day,
                ),
            )
        )
    return bars, peak


def dashboard_context(request: HttpRequest) -> dict[str, Any]:
    if not request.user.has_perm("payments.view_payment"):
        return {"dashboard": None}  # the app list only: the figures are payment data
    now = timezone.now()
    windows = []
    for label, (start, end) in dashboard_windows(now=now).items():
        rows = []
        for figures in rail_figures(start=start, end=end):
            base = {"provider": figures.provider, "currency": figures.currency, "created_at__gte": start}
            rows.append(
                {
                    "figures": figures,
                    "completed_url": changelist("payments.payment", status=Payment.Status.SUCCEEDED, **base),
                    "failed_url": changelist("payments.payment", status__in=FAILED_PAYMENT_STATUSES, **base),
                    "pending_url": changelist("payments.payment", status__in=OPEN_PAYMENT_STATUSES, **base),
                }
            )
        windows.append({"label": label, "start": start, "rows": rows})

    attention = attention_counts(now=now)
    waiting = [
        (
            "Payments stuck (pending over 5 minutes)",
            attention.stuck,
            changelist("payments.payment", status__in=OPEN_PAYMENT_STATUSES, created_at__lt=attention.stuck_before),
        ),
        ("Payments flagged for review", attention.payments_review, changelist("payments.payment", needs_review=1)),
        (
            "Callbacks held for review",
            attention.callbacks_review,
            changelist("payments.callbackevent", status=CallbackEvent.Status.REVIEW),
        ),
        (
            "Callbacks not settled yet (the sweeper re-runs them)",
            attention.inbox_unsettled,
            changelist(
                "payments.callbackevent", status__in=[CallbackEvent.Status.RECEIVED, CallbackEvent.Status.FAILED]
            ),
        ),
        (
            "Callbacks parked as dead",
            attention.inbox_dead,
            changelist("payments.callbackevent", status=CallbackEvent.Status.DEAD),
        ),
        (
            "Payouts waiting for a second person",
            attention.payouts_awaiting_approval,
            changelist("payments.payout", status="requested"),
        ),
        (
            "Refunds waiting for a second person",
            attention.refunds_awaiting_approval,
            changelist("payments.refund", status="requested"),
        ),
        (
            "Payout destination changes waiting for a second person",
            attention.destination_changes_awaiting_approval,
            changelist("patients.payoutdestinationchange", status="requested"),
        ),
        ("Payouts flagged for review", attention.payouts_review, changelist("payments.payout", needs_review=1)),
        ("Refunds flagged for review", attention.refunds_review, changelist("payments.refund", needs_review=1)),
    ]
    for name, out in attention.money_out.items():
        model, plural = f"payments.{name}", f"{name.title()}s"
        waiting += [
            (f"{plural} ambiguous (check the provider's portal)", out.ambiguous, changelist(model, status="ambiguous")),
            (f"{plural} stuck sending (over 10 minutes)", out.stuck_sending, changelist(model, status="sending")),
            (f"{plural} sent over an hour ago, no result", out.overdue, changelist(model, status="sent")),
            (f"{name.title()} results held for a person", out.held_results,
             changelist("payments.callbackevent", status__in=["review", "failed", "dead"])),
        ]  # fmt: skip
    check = attention.last_ledger_check
    when = f" ({timezone.localtime(check.at):%Y-%m-%d %H:%M})" if check else " (never run)"
    waiting.append((f"Ledger problems at the last verify_ledger{when}", check.problems if check else 0,
                    changelist("payments.ledgercheck")))  # fmt: skip
    for source in settings.DASHBOARD_COUNT_SOURCES:  # apps above payments (the month close), wired by settings
        waiting += import_string(source)(now=now)

    pulse_since = now - PULSE_WINDOW
    pulse = [
        {
            "pulse": p,
            "events_url": changelist("payments.callbackevent", provider=p.provider, received_at__gte=pulse_since),
            "errors_url": changelist(
                "payments.callbackevent",
                provider=p.provider,
                status__in=list(ERROR_STATUSES),
                received_at__gte=pulse_since,
            ),
        }
        for p in provider_pulse(now=now, window=PULSE_WINDOW)
    ]

    charts = []
    for currency, days in received_per_day(now=now, days=CHART_DAYS).items():
        bars, peak = chart_bars(days, currency, now)
        charts.append({"currency": currency, "bars": bars, "peak": peak, "total": sum(a for _d, a in days)})

    return {
        "dashboard": {
            "now": now,
            "windows": windows,
            "waiting": waiting,
            "pulse": pulse,
            "charts": charts,
            "chart": {"width": CHART_WIDTH, "height": CHART_HEIGHT, "days": CHART_DAYS},
            "settlement_url": reverse("admin:payments_payment_settlement"),
        }
    }
