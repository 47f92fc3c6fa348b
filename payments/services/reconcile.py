"""Reconciliation: callbacks get lost, so ask providers about every payment still pending, and finish every
inbox event that never settled.

On the ladder (30 s, 2 min, 10 min, 1 h, 6 h, 24 h) by default; an operator's explicit `older_than` or
`reference` checks those payments now. One odd answer or a crash on one payment is logged and counted, never
the end of the run.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.tasks import task
from django.utils import timezone

from donor.notifications import notices_send
from payments.models import Payment
from payments.services.coalesce import notices_yield
from payments.services.dispatch import callbacks_sweep
from payments.services.payments import ladder_step, payment_confirm
from payments.services.payouts import payouts_reconcile
from payments.services.refunds import refunds_reconcile

logger = logging.getLogger("payments.reconcile")
CLAIM_BATCH = 100
OPEN = [Payment.Status.PENDING, Payment.Status.CREATED]


@dataclass
class ReconcileReport:
    checked: int = 0
    changed: int = 0
    still_pending: int = 0
    errors: int = 0
    replayed: int = 0  # inbox events re-run by the sweeper
    events_settled: int = 0
    events_dead: int = 0
    refunds_checked: int = 0  # refunds awaiting a result, asked about (providers that answer status queries)
    payouts_checked: int = 0
    notices_sent: int = 0  # receipts and notices the outbox relay sent (those whose first send was lost or failed)
    outcomes: list[str] = field(default_factory=list)


def payments_reconcile(
    *, older_than: timedelta | None = None, reference: str | None = None, limit: int = 500
) -> ReconcileReport:
    """Check due pending payments, then sweep the inbox.

    Without arguments: payments whose next check on the ladder is due, events whose next attempt is due.
    `older_than` (an operator's explicit request): every open payment and event older than that, now.
    `reference`: that payment (ours or the donation's reference), now, whatever its rung.
    Rows are claimed with select_for_update(skip_locked=True) and pushed to their next rung before the
    provider is asked, so several hosts can run this at once without asking twice.
    """
    report = ReconcileReport()
    now = timezone.now()
    if reference:
        due = Q(reference__iexact=reference) | Q(donation__reference__iexact=reference)
    elif older_than is not None:
        due = Q(created_at__lte=now - older_than)
    else:
        due = Q(next_check_at__lte=now) | Q(next_check_at__isnull=True)
    claimed: set[int] = set()
    while report.checked + report.errors < limit:
        with transaction.atomic():
            batch = list(
                Payment.objects.select_for_update(skip_locked=True)
                .filter(due, status__in=OPEN)
                .exclude(pk__in=claimed)
                .order_by("next_check_at", "pk")[: min(CLAIM_BATCH, limit - report.checked - report.errors)]
            )
            for payment in batch:
                payment.next_check_at = now + timedelta(seconds=ladder_step(payment.check_count + 1))
                payment.save(update_fields=["next_check_at"])
        if not batch:
            break
        for payment in batch:
            claimed.add(payment.pk)
            _check(payment, report)
    if not reference:
        report.refunds_checked = refunds_reconcile()
        report.payouts_checked = payouts_reconcile()
        sweep = callbacks_sweep(received_before=now - older_than if older_than is not None else None, limit=limit)
        report.replayed = sweep.examined
        report.events_settled = sweep.settled
        report.events_dead = sweep.dead
        report.outcomes.extend(sweep.lines)
        # During a callback storm the receipts wait for it to pass (coalesce.notices_yield), here as in the relay.
        report.notices_sent = 0 if notices_yield() else notices_send(limit=limit)["sent"]
    return report


def _check(payment: Payment, report: ReconcileReport) -> None:
    try:
        _result, outcome = payment_confirm(payment_id=payment.pk)
    except Exception as exc:  # one payment's trouble (a database blip, an adapter bug) must not end the run
        report.errors += 1
        report.outcomes.append(f"{payment.reference}: error ({type(exc).__name__}: {exc})")
        logger.exception("Reconciling %s failed; it stays on the ladder", payment.reference)
        return
    report.checked += 1
    line = f"{payment.reference}: {outcome.status} ({outcome.detail})"
    report.outcomes.append(line)
    logger.info("Reconciled %s", line)
    if outcome.changed:
        report.changed += 1
    else:
        report.still_pending += 1


@task()
def reconcile_payments_task() -> int:
    """The scheduled reconciliation: due payments on the ladder, then the inbox sweeper."""
    report = payments_reconcile()
    return report.checked + report.replayed
