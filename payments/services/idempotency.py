"""Idempotency-Key handling: the same key with the same body gets the first answer and no second charge.

The first request holds a lease on the key while it runs. A request that crashed (or whose worker was
killed) must not lock its key forever: once the lease has run out, the next request with the key takes over
— and if the first got as far as creating its donation, it resumes that donation (answering with its payment,
or starting the payment if none was started) instead of creating a second one.
"""

import hashlib
import json
import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from payments.models import IdempotencyRecord

WAIT_FOR_FIRST_SECONDS = 10.0
UNAVAILABLE = 503  # an answer never stored with its key (see _finish)
Answer = tuple[int, dict]


class IdempotencyConflict(Exception):
    """The key was used before with a different body."""


class IdempotencyInProgress(Exception):
    """The first request with this key is still running."""


def record_key(scope: str, key: str) -> str:
    """The stored form of a client's key: `scope:key`, or `scope:sha256:<hex>` when that would not fit the
    column (a 255-character key plus its scope is longer: MariaDB refused it with a 500)."""
    stored = f"{scope}:{key}"
    if len(stored) <= (IdempotencyRecord._meta.get_field("key").max_length or 0):
        return stored
    return f"{scope}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def request_fingerprint(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def idempotent_call(
    *,
    key: str,
    fingerprint: str,
    call: Callable[[Callable[[str], None]], Answer],
    resume: Callable[[str], Answer],
) -> Answer:
    """Run `call(progress)` once per key; `progress(reference)` records the donation it created.

    A concurrent second request waits briefly for the first answer. After the first request's lease
    (IDEMPOTENCY_LEASE_SECONDS) a retry takes the key over: `resume(reference)` when a donation exists,
    else `call` again.
    """
    lease = timedelta(seconds=settings.IDEMPOTENCY_LEASE_SECONDS)
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(
                key=key, request_hash=fingerprint, locked_until=timezone.now() + lease
            )
    except IntegrityError:
        record = _wait_for_first(key=key, fingerprint=fingerprint)
        if record.response_status is not None:
            return record.response_status, record.response_body or {}
        if record.donation_reference:
            return _finish(record, lambda: resume(record.donation_reference))
    return _finish(record, lambda: call(lambda reference: _progress(record, reference)))


def _finish(record: IdempotencyRecord, run: Callable[[], Answer]) -> Answer:
    try:
        status, body = run()
    except BaseException:
        # Nothing was answered. With no donation yet, free the key so the retry runs afresh; with one, end the
        # lease now so the retry resumes it (and never creates a second donation or a second charge).
        _release(record)
        raise
    if status == UNAVAILABLE:
        # Refused before anything was sent (the provider cannot be used here now): not an answer to keep, so a
        # retry after the operator's fix runs afresh, or resumes the donation the first one created.
        _release(record)
        return status, body
    IdempotencyRecord.objects.filter(pk=record.pk).update(response_status=status, response_body=body)
    return status, body


def _release(record: IdempotencyRecord) -> None:
    if IdempotencyRecord.objects.filter(pk=record.pk).values_list("donation_reference", flat=True).first():
        IdempotencyRecord.objects.filter(pk=record.pk).update(locked_until=timezone.now())
    else:
        IdempotencyRecord.objects.filter(pk=record.pk).delete()


def _progress(record: IdempotencyRecord, reference: str) -> None:
    IdempotencyRecord.objects.filter(pk=record.pk).update(donation_reference=reference)
    record.donation_reference = reference


def _wait_for_first(*, key: str, fingerprint: str) -> IdempotencyRecord:
    """The first request's record once it has answered, or once its lease ran out and we took it over."""
    deadline = time.monotonic() + WAIT_FOR_FIRST_SECONDS
    lease = timedelta(seconds=settings.IDEMPOTENCY_LEASE_SECONDS)
    while True:
        record = IdempotencyRecord.objects.get(key=key)
        if record.request_hash != fingerprint:
            raise IdempotencyConflict
        if record.response_status is not None:
            return record
        now = timezone.now()
        if record.locked_until is None or record.locked_until <= now:
            taken = IdempotencyRecord.objects.filter(
                pk=record.pk, response_status__isnull=True, locked_until=record.locked_until
            ).update(locked_until=now + lease)
            if taken:  # compare-and-set: only one retry takes over an abandoned key
                record.locked_until = now + lease
                return record
        if time.monotonic() > deadline:
            raise IdempotencyInProgress
        time.sleep(0.1)
