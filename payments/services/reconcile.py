"""Reconciliation: callbacks get lost, so ask providers about every payment still pending."""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from payments.models import CallbackEvent, Payment
from payments.services.callbacks import callback_replay
from payments.services.payments import ladder_step, payment_confirm

logger = logging.getLogger("payments.reconcile")
CLAIM_BATCH = 100


@dataclass
class ReconcileReport:
    checked: int = 0
    changed: int = 0
    still_pending: int = 0
    replayed: int = 0
    outcomes: list[str] = field(default_factory=list)


def payments_reconcile(*, older_than: timedelta = timedelta(seconds=0), limit: int = 500) -> ReconcileReport:
    """Check due pending payments on the backoff ladder, then re-run failed inbox events.

    Rows are claimed with select_for_update(skip_locked=True) and pushed to their next rung before the
    provider is asked, so several hosts can run this at once without asking twice.
    """
    report = ReconcileReport()
    now = timezone.now()
    while report.checked < limit:
        with transaction.atomic():
            due = list(
                Payment.objects.select_for_update(skip_locked=True)
                .filter(status__in=[Payment.Status.PENDING, Payment.Status.CREATED], created_at__lte=now - older_than)
                .filter(Q(next_check_at__lte=now) | Q(next_check_at__isnull=True))
                .order_by("next_check_at")[: min(CLAIM_BATCH, limit - report.checked)]
            )
            for payment in due:
                payment.next_check_at = now + timedelta(seconds=ladder_step(payment.check_count + 1))
                payment.save(update_fields=["next_check_at"])
        if not due:
            break
        for payment in due:
            report.checked += 1
            result, outcome = payment_confirm(payment_id=payment.pk)
            line = f"{payment.reference}: {outcome.status} ({outcome.detail})"
            report.outcomes.append(line)
            logger.info("Reconciled %s", line)
            if outcome.changed:
                report.changed += 1
            else:
                report.still_pending += 1
    for event in CallbackEvent.objects.filter(status=CallbackEvent.Status.FAILED).order_by("pk")[:limit]:
        outcome = callback_replay(event=event)
        report.replayed += 1
        report.outcomes.append(f"event #{event.pk}: {outcome.code}")
    return report
