"""What the watchdog and the dashboard show of the month close (wired by settings: WATCHDOG_ALERT_SOURCES,
DASHBOARD_COUNT_SOURCES; payments never imports finance)."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.urls import reverse

from finance.models import BalanceQuery, Discrepancy
from finance.services.balance import balance_queries_expire


def finance_alerts(*, now: datetime) -> list[str]:
    alerts = []
    days = settings.FINANCE_EXCEPTION_ALERT_DAYS
    old = Discrepancy.objects.filter(status__in=Discrepancy.OPEN_STATUSES, found_at__lt=now - timedelta(days=days))
    count = old.count()
    if count:
        alerts.append(
            f"{count} month-close exception(s) open for more than {days} day(s) (the admin's Finance → Exceptions: "
            f"attach, hold or write off)"
        )
    # A query without a result after the timeout expires (never waited on); it is alerted until an answer of
    # that provider comes after it.
    minutes = settings.FINANCE_BALANCE_RESULT_TIMEOUT_MINUTES
    balance_queries_expire(now=now)
    expired = BalanceQuery.objects.filter(status=BalanceQuery.Status.EXPIRED)
    for provider in sorted(set(expired.values_list("provider", flat=True))):
        answered = BalanceQuery.objects.filter(provider=provider, status=BalanceQuery.Status.ANSWERED)
        since = answered.aggregate(last=models.Max("requested_at"))["last"]
        unanswered = expired.filter(provider=provider)
        n = (unanswered.filter(requested_at__gt=since) if since else unanswered).count()
        if n:
            alerts.append(
                f"{provider}: {n} wallet balance query(ies) without a result after {minutes} minutes (the provider "
                f"does not retry: read the balance in its portal, or ask again with balance_query)"
            )
    return alerts


def finance_counts(*, now: datetime) -> list[tuple[str, int, str]]:
    url = reverse("admin:finance_discrepancy_changelist")
    open_count = Discrepancy.objects.filter(status__in=Discrepancy.OPEN_STATUSES).count()
    waiting = Discrepancy.objects.filter(status=Discrepancy.Status.WRITE_OFF_REQUESTED).count()
    return [
        ("Month-close exceptions open", open_count, f"{url}?status__in=open,held,write_off_requested"),
        ("Write-offs waiting for a second person", waiting, f"{url}?status=write_off_requested"),
    ]
