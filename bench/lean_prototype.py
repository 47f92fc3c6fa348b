"""A measurement prototype, NOT application code: the callback hot path with fewer round trips and commits.

bench/README.md proposes application changes to reach the callback throughput goal. To put a number on
them without touching the application, this module monkeypatches the trusted-success path when
`apply()` is called (bench/lean_wsgi.py does so for gunicorn: `BENCH_WSGI=bench.lean_wsgi:application`).
Everything else (untrusted, failures, unknown references, replays, the verify task) still runs the
application's own code. It keeps the guarantees that matter: the raw callback is committed before it is
trusted, the payment, donation and patient rows are locked in that order, the Allocation unique constraint
still refuses a second credit (the whole transaction then rolls back and the event is marked failed,
replayable), duplicates are answered without re-processing.

What it changes (each is one suggestion in bench/README.md):
  1. callback_record: the single INSERT runs in autocommit instead of atomic() (-3 round trips).
  2. the payment lookup takes the row lock itself: SELECT ... FOR UPDATE once instead of SELECT, then
     SELECT ... FOR UPDATE again (-1).
  3. one transaction for the whole apply: payment, donation, allocation, patient, the notification task
     row (django-tasks-db is transactional) and the CallbackEvent status (-2 commits, -2 autocommit toggles).
  4. no savepoints inside it (-4: SAVEPOINT/RELEASE around donation_complete and around the allocation).
  5. the patient's new total is computed from the locked row, so no refresh_from_db SELECT (-1); the donor
     join on the donation lock goes.
  6. get_provider() result reused instead of re-instantiated three times per callback (CPU only).
With apply(sql=True) (bench/sql_wsgi.py) the inbox INSERT and the whole transaction above are hand-written
SQL on Django's connection (still inside the Django view, middleware, logging and the tasks framework);
anything but a pending payment of a pending donation under the "keep" overfunding policy rolls back and
goes to the application's code.
"""

import hashlib
import logging
from functools import cache

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

logger = logging.getLogger("payments")
ledger_logger = logging.getLogger("payments.ledger")


def apply(*, sql: bool = False) -> None:
    """Patch the webhook view's hot path. sql=True: hand-written SQL instead of the ORM (bench/sql_wsgi.py)."""
    from payments import webhooks
    from payments.providers import get_provider
    from payments.services import callbacks

    cached_provider = cache(get_provider)
    original_process = callbacks.callback_process

    def callback_record(*, provider_code, kind, body, headers, client_ip, url_token=""):
        from payments.models import CallbackEvent

        provider = cached_provider(provider_code)
        digest = hashlib.sha256(body).hexdigest()
        fields = {
            "provider": provider_code,
            "kind": kind,
            "body": provider.redact(body),
            "headers": {k: v for k, v in headers.items() if k.lower() in callbacks.KEPT_HEADERS},
            "client_ip": client_ip,
            "sha256": digest,
            "url_token": url_token[:64],
        }
        dedup_key = f"{provider_code}:{kind}:{digest}"
        try:
            try:  # autocommit: one INSERT is its own transaction, committed before we go on
                if sql:
                    return _record_sql(dedup_key, fields)
                return CallbackEvent.objects.create(dedup_key=dedup_key, **fields)
            except IntegrityError:
                original = (
                    CallbackEvent.objects.filter(dedup_key=dedup_key)
                    .only("pk", "status", "payment_id", "our_reference", "provider_reference")
                    .first()
                )
                settled = original is not None and original.status in callbacks.SETTLED_STATUSES
                return CallbackEvent.objects.create(
                    duplicate_of=original,
                    status=CallbackEvent.Status.DUPLICATE if settled else CallbackEvent.Status.RECEIVED,
                    payment_id=original.payment_id if original else None,
                    our_reference=original.our_reference if original else "",
                    provider_reference=original.provider_reference if original else "",
                    **fields,
                )
        except DatabaseError as exc:
            logger.error("Could not store %s/%s callback: %s", provider_code, kind, exc)
            raise callbacks.InboxUnavailable from exc

    def callback_process(*, event, raw_body=None):
        from payments.models import CallbackEvent
        from payments.providers.base import CallbackMalformed, CallbackTrust, PaymentStatus

        if event.status == CallbackEvent.Status.DUPLICATE or raw_body is None or event.url_token:
            return original_process(event=event, raw_body=raw_body)
        provider = cached_provider(event.provider)
        trust = provider.authenticate_callback(event.kind, raw_body, event.headers, "", "")
        try:
            result = provider.parse_callback(event.kind, raw_body, event.headers)
        except CallbackMalformed:
            return original_process(event=event, raw_body=raw_body)
        if not (
            trust == CallbackTrust.TRUSTED
            and settings.PAYMENTS_APPLY_TRUSTED_CALLBACKS
            and result.status == PaymentStatus.SUCCEEDED
        ):
            return original_process(event=event, raw_body=raw_body)
        event.trust = trust
        event.our_reference = result.our_reference[:64]
        event.provider_reference = result.provider_reference[:100]
        try:
            outcome = _apply_success_sql(event, result) if sql else _apply_success(event, result)
        except Exception as exc:  # same boundary as the application: keep the event, replayable
            logger.exception("Callback %s failed while processing", event.pk)
            callbacks._mark(event, CallbackEvent.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
            return callbacks.CallbackOutcome("failed", 200, "Received; processing will be retried.")
        if outcome is None:  # no such payment, or not the plain case: the application's own code answers
            return original_process(event=event, raw_body=raw_body)
        return outcome

    webhooks.callback_record = callback_record
    webhooks.callback_process = callback_process
    webhooks.get_provider = cached_provider
    callbacks.get_provider = cached_provider


def _apply_success(event, result):
    from donor.models import Allocation, Donation
    from donor.services import _split
    from patients.models import Patient
    from payments.models import CallbackEvent, Payment
    from payments.services.callbacks import ACCEPTED, CallbackOutcome
    from payments.services.payments import _mismatch
    from payments.tasks import notify_donation_status

    lookups = Q()
    if result.our_reference:
        lookups |= Q(reference=result.our_reference) | Q(external_id=result.our_reference)
    if result.provider_reference:
        lookups |= Q(provider_reference=result.provider_reference)
    now = timezone.now()
    credited = None
    with transaction.atomic():
        payment = Payment.objects.select_for_update().filter(lookups, provider=event.provider).order_by("-pk").first()
        if payment is None:
            return None
        event.payment = payment
        status, error = CallbackEvent.Status.PROCESSED, ""
        mismatch = _mismatch(payment, result)
        if mismatch:
            logger.error("Payment %s: %s; not applied, sent to review", payment.reference, mismatch)
            status, error = CallbackEvent.Status.REVIEW, mismatch
        elif payment.status == Payment.Status.SUCCEEDED:
            status, error = CallbackEvent.Status.IGNORED, "already succeeded"
        else:
            late = payment.is_terminal
            previous = payment.status
            payment.status = Payment.Status.SUCCEEDED
            payment.receipt = result.receipt[:100] or payment.receipt
            payment.failure_reason = ""
            payment.completed_at = now
            payment.next_check_at = None
            fields = ["status", "receipt", "failure_reason", "completed_at", "next_check_at", "updated_at"]
            if result.provider_reference and not payment.provider_reference:
                payment.provider_reference = result.provider_reference
                fields.append("provider_reference")
            if late:
                payment.needs_review = True
                fields.append("needs_review")
            payment.save(update_fields=fields)

            donation = Donation.objects.select_for_update().get(pk=payment.donation_id)
            if donation.status not in (Donation.Status.COMPLETED, Donation.Status.REFUNDED):
                donation_late = donation.status != Donation.Status.PENDING
                patient = (
                    Patient.objects.select_for_update()
                    .only("pk", "code", "currency", "funding_goal", "funding_received", "status")
                    .get(pk=donation.patient_id)
                    if donation.patient_id
                    else None
                )
                for target, amount in _split(donation, patient):
                    # No savepoint: a second credit violates the unique constraint and rolls back everything.
                    Allocation.objects.create(
                        donation=donation,
                        patient=target,
                        target=Allocation.target_for(target),
                        amount=amount,
                        currency=donation.currency,
                    )
                    if target is not None:
                        total = target.funding_received + amount  # exact: we hold the row lock
                        changes = {"funding_received": F("funding_received") + amount, "updated_at": now}
                        if target.status == Patient.Status.FUNDING and total >= target.funding_goal:
                            changes |= {"status": Patient.Status.FULLY_FUNDED, "fully_funded_at": now}
                        Patient.objects.filter(pk=target.pk).update(**changes)
                Donation.objects.filter(pk=donation.pk).update(
                    status=Donation.Status.COMPLETED,
                    completed_at=now,
                    status_reason="",
                    updated_at=now,
                    **({"needs_review": True} if donation_late else {}),
                )
                credited = (donation.reference, donation.amount, donation.currency)
            if settings.TASKS_BACKEND == "database":  # a queued row: part of this transaction
                notify_donation_status.enqueue(donation.pk)
            else:
                donation_id = donation.pk
                transaction.on_commit(lambda: notify_donation_status.enqueue(donation_id))
        CallbackEvent.objects.filter(pk=event.pk).update(
            status=status,
            error=error[:2000],
            attempts=F("attempts") + 1,
            processed_at=now,
            trust=event.trust,
            payment=payment,
            our_reference=event.our_reference,
            provider_reference=event.provider_reference,
        )
    if status == CallbackEvent.Status.PROCESSED:
        if credited:
            ledger_logger.info("Donation %s completed: %s %s credited", *credited)
        logger.info("Payment %s %s -> succeeded%s", payment.reference, previous, " (late)" if late else "")
    if status == CallbackEvent.Status.REVIEW:
        return CallbackOutcome("review", 200, "Received; held for review.")
    return CallbackOutcome(ACCEPTED, 200, "Callback received")


# --- sql=True: the same transaction in hand-written SQL -------------------------------------------------------


class _NotPlain(Exception):
    """Not a pending payment with a pending donation: roll back and let the application handle it."""


def _naive_utc():
    return timezone.now().replace(tzinfo=None)  # what Django stores in MySQL DATETIME with USE_TZ


def _record_sql(dedup_key, fields):
    import json

    from django.db import connection

    from payments.models import CallbackEvent

    now = _naive_utc()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO payments_callbackevent (provider, kind, body, headers, client_ip, sha256, dedup_key, "
            "url_token, trust, status, error, attempts, our_reference, provider_reference, received_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, '', 'received', '', 0, '', '', %s)",
            (
                fields["provider"],
                fields["kind"],
                fields["body"],
                json.dumps(fields["headers"]),
                fields["client_ip"],
                fields["sha256"],
                dedup_key,
                fields["url_token"],
                now,
            ),
        )
        event = CallbackEvent(pk=cursor.lastrowid, dedup_key=dedup_key, received_at=now, **fields)
    event._state.adding = False
    return event


def _apply_success_sql(event, result):
    from django.db import connection

    from payments.services.callbacks import ACCEPTED, CallbackOutcome
    from payments.tasks import notify_donation_status

    if settings.OVERFUNDING_POLICY != "keep":
        return None
    now = _naive_utc()
    ours, theirs = result.our_reference or "\x00", result.provider_reference or "\x00"
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, donation_id, reference, external_id, provider_reference, amount, currency, status "
                "FROM payments_payment WHERE (reference = %s OR external_id = %s OR provider_reference = %s) "
                "AND provider = %s ORDER BY id DESC LIMIT 1 FOR UPDATE",
                (ours, ours, theirs, event.provider),
            )
            row = cursor.fetchone()
            if row is None:
                raise _NotPlain
            payment_id, donation_id, reference, external_id, provider_reference, amount, currency, status = row
            if (
                status not in ("pending", "created")
                or (result.our_reference and result.our_reference not in (reference, external_id))
                or (
                    result.provider_reference and provider_reference and result.provider_reference != provider_reference
                )
                or (result.amount is not None and result.amount != amount)
                or (result.currency and result.currency != currency)
            ):
                raise _NotPlain
            cursor.execute(
                "SELECT reference, patient_id, amount, currency, status FROM donor_donation WHERE id = %s FOR UPDATE",
                (donation_id,),
            )
            donation_reference, patient_id, donation_amount, donation_currency, donation_status = cursor.fetchone()
            if donation_status != "pending":
                raise _NotPlain
            cursor.execute(
                "UPDATE payments_payment SET status = 'succeeded', receipt = %s, failure_reason = '', "
                "completed_at = %s, next_check_at = NULL, updated_at = %s, "
                "provider_reference = COALESCE(provider_reference, %s) WHERE id = %s",
                (result.receipt[:100], now, now, result.provider_reference or None, payment_id),
            )
            target = "general_fund"
            if patient_id is not None:
                target = f"patient:{patient_id}"
                # Lock the patient before the allocation INSERT (its foreign key takes a shared lock on the
                # patient row; two shared holders upgrading to write would deadlock).
                cursor.execute(
                    "SELECT funding_goal, funding_received, status FROM patients_patient WHERE id = %s FOR UPDATE",
                    (patient_id,),
                )
                goal, received, patient_status = cursor.fetchone()
                if patient_status == "funding" and received + donation_amount >= goal:
                    cursor.execute(
                        "UPDATE patients_patient SET funding_received = funding_received + %s, status = "
                        "'fully_funded', fully_funded_at = %s, updated_at = %s WHERE id = %s",
                        (donation_amount, now, now, patient_id),
                    )
                else:
                    cursor.execute(
                        "UPDATE patients_patient SET funding_received = funding_received + %s WHERE id = %s",
                        (donation_amount, patient_id),
                    )
            cursor.execute(
                "INSERT INTO donor_allocation (donation_id, patient_id, target, amount, currency, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (donation_id, patient_id, target, donation_amount, donation_currency, now),
            )
            cursor.execute(
                "UPDATE donor_donation SET status = 'completed', completed_at = %s, status_reason = '', "
                "updated_at = %s WHERE id = %s",
                (now, now, donation_id),
            )
            if settings.TASKS_BACKEND == "database":  # a queued row: part of this transaction
                notify_donation_status.enqueue(donation_id)
            else:
                transaction.on_commit(lambda: notify_donation_status.enqueue(donation_id))
            cursor.execute(
                "UPDATE payments_callbackevent SET status = 'processed', error = '', attempts = attempts + 1, "
                "processed_at = %s, trust = %s, payment_id = %s, our_reference = %s, provider_reference = %s "
                "WHERE id = %s",
                (now, event.trust, payment_id, event.our_reference, event.provider_reference, event.pk),
            )
    except _NotPlain:
        return None
    ledger_logger.info("Donation %s completed: %s %s credited", donation_reference, donation_amount, donation_currency)
    logger.info("Payment %s %s -> succeeded", reference, status)
    return CallbackOutcome(ACCEPTED, 200, "Callback received")
