"""Refunds of completed donations, on every rail that has them, on the money-out lifecycle (money_out.py).

Requested by one staff user (`payments.add_refund`), approved by another (`payments.approve_refund`), the
provider asked once; refunded → the ledger gets reversing rows (donor.services.donation_refund), the patient's
funding goes down and the donor gets a notice. Never more than was paid, never twice (one live refund per
donation, checked under the donation's lock), never more than the patient's funds not yet paid out.
Providers without a refund API (AzamPay: docs/providers/azampay.md) are paid back outside it and the checker
records the transfer's receipt (`manual`).
"""

import logging
import uuid
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from donor.models import Donation
from donor.notifications import donation_notify_queue, notices_record
from donor.services import LedgerRefused, donation_refund
from patients.services import patient_lock
from payments.models import CallbackEvent, Payment, Refund, fit
from payments.providers.base import PaymentStatus, RefundRequest, RefundResult, Refunds
from payments.providers.registry import PROVIDER_CLASSES
from payments.services import money_out as lifecycle
from payments.services import money_out_results as results
from payments.services.audit import audit_record
from payments.services.inbox import CallbackOutcome
from payments.services.money_out import DONE, PENDING, MoneyOutRefused, Sent, Staff, Verdict
from payments.services.money_out_results import approve
from payments.services.payments import method_label

logger = logging.getLogger("payments.refunds")
RefundRefused = MoneyOutRefused
OUTCOMES = {PaymentStatus.SUCCEEDED: DONE, PaymentStatus.FAILED: Refund.Status.FAILED}


def verdict_of(result: RefundResult, receipt: str = "") -> Verdict:
    return Verdict.of(result, OUTCOMES.get(result.status, PENDING), receipt=receipt or result.receipt)


class RefundFlow(lifecycle.Flow):
    def patient_id(self, obj: Refund) -> int | None:
        return obj.donation.patient_id

    def chosen_id(self, provider: Refunds, obj: Refund) -> str:
        return provider.refund_reference_before_request()

    def send(self, provider: Refunds, obj: Refund, result_url: str, timeout_url: str) -> Sent:
        payment = obj.payment
        accepted = provider.send_refund(
            RefundRequest(
                reference=obj.reference,
                payment_reference=payment.provider_reference or "",
                amount=obj.amount,
                currency=obj.currency,
                msisdn=payment.msisdn,
                result_url=result_url,
                timeout_url=timeout_url,
                reason=obj.reason or f"Refund of {obj.donation.reference}",
                provider_reference=obj.provider_reference or "",
                payment_our_reference=payment.reference,
                payment_receipt=payment.receipt,
            )
        )
        said = RefundResult(obj.reference, accepted.provider_reference, accepted.status, accepted.message)
        return Sent(accepted.provider_reference, verdict_of(said, accepted.receipt))

    def query(self, provider: Refunds, obj: Refund) -> Verdict | None:
        said = provider.refund_status(reference=obj.reference, provider_reference=obj.provider_reference or "")
        return verdict_of(said) if said is not None else None

    def parse(self, provider: Refunds, kind: str, body: bytes) -> Verdict:
        return verdict_of(provider.parse_refund_result(kind, body))

    def matches(self, verdict: Verdict) -> list[Q]:
        # A reversal names the receipt it gave back (M-Pesa), known before sending: after a lost answer or a
        # timeout that is all that ties its result to us. One awaiting its result first; else the newest refund of
        # that payment in any status, so a reversal we never sent (made in Daraja's portal, or after we called the
        # send failed) is held for a person at once, as a payout's is, rather than retried for a day until dead.
        if not verdict.reversed_receipt:
            return super().matches(verdict)
        by_receipt = Q(payment__receipt=verdict.reversed_receipt)
        return [*super().matches(verdict), by_receipt & Q(status__in=Refund.AWAITING_RESULT), by_receipt]

    def before_approve(self, obj: Refund, receipt: str) -> None:
        if obj.manual and not receipt:
            raise RefundRefused(
                f"{PROVIDER_CLASSES[obj.provider].display_name} has no refund API: pay the donor "
                "back outside it, then approve with the transfer's receipt."
            )

    def on_done(self, obj: Refund, verdict: Verdict) -> None:
        try:
            donation_refund(donation_id=obj.donation_id, amount=obj.amount)
        except LedgerRefused as refused:  # the money went back; the ledger could not follow: a person looks
            Refund.objects.filter(pk=obj.pk).update(
                needs_review=True, result_desc=fit(Refund, "result_desc", f"refunded, ledger refused: {refused}")
            )
            logger.error("Refund %s: %s", obj.reference, refused)
            return
        rail = method_label(obj.payment.provider, obj.payment.channel)
        notices_record(donation_id=obj.donation_id, rail=rail, refund=True)  # commits with the reversal
        transaction.on_commit(lambda: donation_notify_queue(obj.donation_id, rail, refund=True))


FLOW = RefundFlow(Refund, Refunds)


def refund_supported(provider_code: str) -> bool:
    """Whether the provider can refund through its API (else a refund is made outside and recorded)."""
    cls = PROVIDER_CLASSES.get(provider_code)
    return cls is not None and issubclass(cls, Refunds)


def _paid_payment(donation: Donation) -> Payment:
    payment = donation.payments.filter(status=Payment.Status.SUCCEEDED).order_by("pk").first()
    if payment is None:
        raise RefundRefused(f"Donation {donation.reference} has no completed payment to refund.")
    return payment


def refund_check(*, donation: Donation, amount: Decimal, requested_by: Staff) -> Payment:
    """The rules of a refund request, without locking (the admin form shows them before saving)."""
    lifecycle.require(requested_by, "payments.add_refund", "request refunds")
    if donation.status != Donation.Status.COMPLETED:
        raise RefundRefused(f"Donation {donation.reference} is {donation.status}; only a completed one is refunded.")
    payment = _paid_payment(donation)
    amount = Decimal(amount)
    if amount <= 0:
        raise RefundRefused("A refund is a positive amount.")
    if amount > donation.amount:
        raise RefundRefused(f"At most {donation.currency} {donation.amount:,} was paid: never refund more.")
    provider = FLOW.provider(payment.provider)
    if provider is not None and amount != donation.amount and not provider.refunds_partial:
        raise RefundRefused(f"{PROVIDER_CLASSES[payment.provider].display_name} refunds the whole payment only.")
    if Refund.objects.filter(donation=donation, status__in=Refund.LIVE).exists():
        raise RefundRefused(f"Donation {donation.reference} already has a refund.")
    if donation.patient is not None and amount > (available := lifecycle.funds_available(donation.patient)):
        raise RefundRefused(
            f"Only {donation.currency} {available:,} of {donation.patient}'s funds is not yet paid "
            "out: this refund cannot come from the patient's funds."
        )
    return payment


def refund_request(*, donation: Donation, amount: Decimal, reason: str, requested_by: Staff) -> Refund:
    """The maker's step: record the intent. Nothing is sent."""
    refund_check(donation=donation, amount=amount, requested_by=requested_by)
    with transaction.atomic():
        locked = Donation.objects.select_for_update().get(pk=donation.pk)  # one live refund per donation
        if locked.patient_id is not None:  # the patient's funds, as a payout request takes them (its lock)
            patient_lock(patient_id=locked.patient_id)
        payment = refund_check(donation=locked, amount=amount, requested_by=requested_by)
        refund = Refund.objects.create(
            reference=f"{settings.DONATION_REFERENCE_PREFIX}-RF-{uuid.uuid4().hex[:16]}",
            donation=locked,
            payment=payment,
            provider=payment.provider,
            amount=Decimal(amount),
            currency=locked.currency,
            reason=fit(Refund, "reason", reason),
            manual=not refund_supported(payment.provider),
            requested_by=requested_by,
        )
        audit_record(
            actor=requested_by,
            action="refund.request",
            target=f"refund {refund.reference}",
            detail=f"{refund.currency} {refund.amount} of {locked.reference}",
        )
    logger.info(
        "Refund %s requested by %s: %s %s of %s",
        refund.reference,
        requested_by,
        refund.currency,
        amount,
        donation.reference,
    )
    return refund


def refund_approve(*, refund_id: int, approved_by: Staff, receipt: str = "") -> Any:
    """The checker's step; a manual refund (no refund API) is approved with the outside transfer's receipt."""
    return approve(FLOW, refund_id, approved_by, receipt=receipt)


def refund_cancel(*, refund_id: int, cancelled_by: Staff) -> Any:
    return lifecycle.cancel(FLOW, refund_id, cancelled_by)


def refund_resolve(*, refund_id: int, refunded: bool, resolved_by: Staff, receipt: str = "") -> Any:
    return lifecycle.resolve(FLOW, refund_id, done=refunded, by=resolved_by, receipt=receipt)


def refund_callback(*, event: CallbackEvent, body: bytes, live: bool) -> CallbackOutcome:
    return results.handle_callback(FLOW, event=event, body=body, live=live)


def refunds_reconcile(*, limit: int = 200) -> int:
    return results.reconcile(FLOW, limit=limit)
