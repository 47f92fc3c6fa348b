"""The watchdog: what an operator must hear about before a donor complains (DESIGN "Reconciliation")."""

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

from donor.models import Notice
from payments.models import CallbackEvent, Payment
from payments.services.money_out_results import waiting_for_a_person
from payments.services.payouts import FLOW as PAYOUTS
from payments.services.refunds import FLOW as REFUNDS

STUCK_AFTER = timedelta(minutes=5)
SILENCE_AFTER = timedelta(hours=1)
ERROR_WINDOW = timedelta(hours=1)
ERROR_RATE_LIMIT = 0.05
MIN_EVENTS_FOR_RATE = 20  # below this a couple of forged callbacks would look like an outage
ERROR_STATUSES = (
    CallbackEvent.Status.FAILED,
    CallbackEvent.Status.REJECTED,
    CallbackEvent.Status.REVIEW,
    CallbackEvent.Status.DEAD,
)
UNSETTLED_AFTER = timedelta(minutes=10)


def watchdog_alerts() -> list[str]:
    """One line per problem, per provider; an empty list means all is well."""
    now = timezone.now()
    alerts: list[str] = []
    for provider in settings.PAYMENT_PROVIDERS:
        pending = Payment.objects.filter(provider=provider, status__in=[Payment.Status.PENDING, Payment.Status.CREATED])
        stuck = pending.filter(created_at__lt=now - STUCK_AFTER).count()
        if stuck:
            alerts.append(
                f"{provider}: {stuck} payment(s) pending for more than 5 minutes "
                f"(run reconcile_payments; check the provider's status page)"
            )
        events = CallbackEvent.objects.filter(provider=provider)
        if (
            pending.filter(created_at__lt=now - SILENCE_AFTER).exists()
            and not events.filter(received_at__gte=now - SILENCE_AFTER).exists()
        ):
            alerts.append(
                f"{provider}: no callbacks for an hour while payments are pending "
                f"(is the callback URL registered and reachable?)"
            )
        recent = events.filter(received_at__gte=now - ERROR_WINDOW)
        total = recent.count()
        if total >= MIN_EVENTS_FOR_RATE:
            errors = recent.filter(status__in=ERROR_STATUSES).count()
            if errors / total > ERROR_RATE_LIMIT:
                alerts.append(
                    f"{provider}: {errors} of {total} callbacks in the last hour failed, were rejected "
                    f"or need review ({errors / total:.0%}; see the admin's Callback events)"
                )
    dead = CallbackEvent.objects.filter(status=CallbackEvent.Status.DEAD).count()
    if dead:
        alerts.append(
            f"{dead} callback(s) parked as dead after repeated failures (see the admin's Callback events; "
            f"fix the cause, then `replay_callbacks --status dead`)"
        )
    stale = CallbackEvent.objects.filter(
        status__in=[CallbackEvent.Status.RECEIVED, CallbackEvent.Status.FAILED], received_at__lt=now - UNSETTLED_AFTER
    ).count()
    if stale:
        alerts.append(
            f"{stale} callback(s) received more than 10 minutes ago are not settled yet "
            f"(is reconcile_payments running? it re-runs them)"
        )
    needs_review = Payment.objects.filter(needs_review=True, updated_at__gte=now - ERROR_WINDOW).count()
    if needs_review:
        alerts.append(f"{needs_review} payment(s) flagged for review in the last hour (late or conflicting results)")
    dead_notices = Notice.objects.filter(status=Notice.Status.DEAD).count()
    if dead_notices:
        alerts.append(
            f"{dead_notices} receipt or notice(s) could not be sent after repeated tries (the admin's Notices: the "
            f"error of each; fix the mail or Telegram settings, then set them pending again)"
        )
    # Apps layered above payments (the month close) add their lines through settings, never by import.
    extra = [line for source in settings.WATCHDOG_ALERT_SOURCES for line in import_string(source)(now=now)]
    return alerts + money_out_alerts(now=now) + extra


def money_out_alerts(*, now: datetime) -> list[str]:
    """Every payout or refund waiting for a person, until a person has settled it (not only the last hour's:
    money that may have moved must never wait in silence)."""
    alerts = []
    for flow in (PAYOUTS, REFUNDS):
        waiting, name = waiting_for_a_person(flow, now=now), flow.name
        where = f"the admin's {name.title()}s"
        lines = [
            (waiting.ambiguous, f"{name}(s) ambiguous: the provider may have moved the money (check its portal, "
                                f"then resolve in {where})"),
            (waiting.review, f"{name}(s) flagged for review: a late, contradicting or mismatched result ({where})"),
            (waiting.stuck_sending, f"{name}(s) stuck sending for more than 10 minutes (the sender died; rails "
                                    f"with a status query are asked by reconcile_payments, others need a person)"),
            (waiting.overdue, f"{name}(s) sent more than an hour ago without a result ({where})"),
            (waiting.held_results, f"{name} result(s) held for a person or naming no {name} yet (the admin's "
                                   f"Callback events: apply after checking the provider's portal)"),
        ]  # fmt: skip
        alerts += [f"{count} {text}" for count, text in lines if count]
    return alerts
