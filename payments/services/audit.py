"""The money path's written record: a payment's history (timeline) and who did what by hand (audit).

Both are append-only; nothing in the admin can edit or delete them. Recorded in the same transaction as the
change they describe where there is one, so the record and the change commit together.
"""

import logging

from django.contrib.auth.models import AnonymousUser, User

from payments.models import AuditEntry, Payment, PaymentHistory, fit

logger = logging.getLogger("payments.audit")


def history_record(*, payment_id: int, kind: str, summary: str, cause: str = "") -> None:
    PaymentHistory.objects.create(
        payment_id=payment_id,
        kind=kind,
        summary=fit(PaymentHistory, "summary", summary),
        cause=fit(PaymentHistory, "cause", cause),
    )


def audit_record(*, actor: User | AnonymousUser | None, action: str, target: str, detail: str = "") -> AuditEntry:
    """One line of "who did what": `target` names the object ("payout RHCI-PO-…")."""
    who = actor if actor is not None and actor.is_authenticated else None
    entry = AuditEntry.objects.create(
        actor=who,
        action=fit(AuditEntry, "action", action),
        target=fit(AuditEntry, "target", target),
        detail=fit(AuditEntry, "detail", detail),
    )
    logger.info("Audit: %s %s %s %s", who or "system", action, target, detail[:200])
    return entry


def audit_destination_step(
    sender: object, *, actor: User | None, action: str, target: str, detail: str, **kwargs: object
) -> None:
    """Receiver of `patients.signals.destination_audit` (connected in payments.apps): a step of a payout
    destination change goes into the same audit log as the payouts it steers. Runs inside the step's
    transaction; if it fails, the step rolls back."""
    audit_record(actor=actor, action=action, target=target, detail=detail)


def payment_target(payment: Payment) -> str:
    return f"payment {payment.reference}"
