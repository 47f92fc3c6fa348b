"""Working a month-close exception to an end: attach it to a payment, hold it, or write it off, the last under
maker-checker (one person asks with a reason, a different one with `finance.approve_writeoff` approves).
Every step is audited (payments' audit log) in the transaction that makes it."""

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.utils import timezone

from finance.models import Discrepancy
from payments.models import Payment
from payments.services.audit import audit_record, history_record

Actor = User | AnonymousUser


class ExceptionRefused(ValueError):
    pass


def target(discrepancy: Discrepancy) -> str:
    return f"finance exception {discrepancy.pk}"


def _locked(pk: int) -> Discrepancy:
    return Discrepancy.objects.select_for_update().get(pk=pk)


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ExceptionRefused("give a reason")
    return reason[:255]


def exception_attach(pk: int, *, payment: Payment, actor: Actor, reason: str) -> Discrepancy:
    """The statement's money is this payment's (its reference differed, or a person found it). Links only: the
    ledger is never credited from a statement line."""
    reason = _reason(reason)
    with transaction.atomic():
        d = _locked(pk)
        if not d.is_open:
            raise ExceptionRefused(f"this exception is already {d.get_status_display().lower()}")
        if d.kind not in (Discrepancy.Kind.STATEMENT_ONLY, Discrepancy.Kind.MISMATCH):
            raise ExceptionRefused("only a statement line can be attached to a payment")
        if payment.provider != d.provider:
            raise ExceptionRefused(f"payment {payment.reference} is a {payment.provider} payment, not {d.provider}")
        d.payment, d.status, d.reason, d.resolved_at = payment, Discrepancy.Status.ATTACHED, reason, timezone.now()
        d.requested_by = actor if isinstance(actor, User) else None
        d.save(update_fields=["payment", "status", "reason", "resolved_at", "requested_by"])
        line = d.line
        history_record(
            payment_id=payment.pk,
            kind="transition",
            summary=f"statement line {line.provider_reference if line else ''} attached at the month close: {reason}",
            cause="finance.attach",
        )
        audit_record(
            actor=actor,
            action="finance.exception.attach",
            target=target(d),
            detail=f"payment {payment.reference}: {reason}",
        )
    return d


def exception_hold(pk: int, *, actor: Actor, reason: str) -> Discrepancy:
    reason = _reason(reason)
    with transaction.atomic():
        d = _locked(pk)
        if d.status not in (Discrepancy.Status.OPEN, Discrepancy.Status.HELD):
            raise ExceptionRefused(f"this exception is {d.get_status_display().lower()}")
        d.status, d.reason = Discrepancy.Status.HELD, reason
        d.save(update_fields=["status", "reason"])
        audit_record(actor=actor, action="finance.exception.hold", target=target(d), detail=reason)
    return d


def exception_request_write_off(pk: int, *, actor: Actor, reason: str) -> Discrepancy:
    """The maker's half: the exception waits for a second person."""
    reason = _reason(reason)
    if not isinstance(actor, User) or not actor.is_authenticated:
        raise ExceptionRefused("a write-off is asked by a signed-in person")
    with transaction.atomic():
        d = _locked(pk)
        if d.status not in (Discrepancy.Status.OPEN, Discrepancy.Status.HELD):
            raise ExceptionRefused(f"this exception is {d.get_status_display().lower()}")
        d.status, d.reason, d.requested_by = Discrepancy.Status.WRITE_OFF_REQUESTED, reason, actor
        d.save(update_fields=["status", "reason", "requested_by"])
        audit_record(actor=actor, action="finance.writeoff.request", target=target(d), detail=reason)
    return d


def exception_approve_write_off(pk: int, *, actor: Actor) -> Discrepancy:
    """The checker's half: someone other than the one who asked, holding `finance.approve_writeoff`."""
    if not isinstance(actor, User) or not actor.has_perm("finance.approve_writeoff"):
        raise ExceptionRefused("approving a write-off needs the finance.approve_writeoff permission")
    with transaction.atomic():
        d = _locked(pk)
        if d.status != Discrepancy.Status.WRITE_OFF_REQUESTED:
            raise ExceptionRefused("no write-off has been asked for this exception")
        if d.requested_by_id == actor.pk:
            raise ExceptionRefused("a different person must approve the write-off (you asked for it)")
        d.status, d.approved_by, d.resolved_at = Discrepancy.Status.WRITTEN_OFF, actor, timezone.now()
        d.save(update_fields=["status", "approved_by", "resolved_at"])
        audit_record(
            actor=actor,
            action="finance.writeoff.approve",
            target=target(d),
            detail=f"asked by {d.requested_by}: {d.reason}",
        )
    return d


def exception_reject_write_off(pk: int, *, actor: Actor, reason: str) -> Discrepancy:
    reason = _reason(reason)
    if not isinstance(actor, User) or not actor.has_perm("finance.approve_writeoff"):
        raise ExceptionRefused("refusing a write-off needs the finance.approve_writeoff permission")
    with transaction.atomic():
        d = _locked(pk)
        if d.status != Discrepancy.Status.WRITE_OFF_REQUESTED:
            raise ExceptionRefused("no write-off has been asked for this exception")
        d.status = Discrepancy.Status.OPEN
        d.save(update_fields=["status"])
        audit_record(actor=actor, action="finance.writeoff.reject", target=target(d), detail=reason)
    return d
