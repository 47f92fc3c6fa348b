"""Idempotency-Key handling: the same key with the same body gets the first answer and no second charge."""

import hashlib
import json
import time
from collections.abc import Callable

from django.db import IntegrityError, transaction

from payments.models import IdempotencyRecord

WAIT_FOR_FIRST_SECONDS = 10.0


class IdempotencyConflict(Exception):
    """The key was used before with a different body."""


class IdempotencyInProgress(Exception):
    """The first request with this key is still running."""


def request_fingerprint(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def idempotent_call(*, key: str, fingerprint: str, call: Callable[[], tuple[int, dict]]) -> tuple[int, dict]:
    """Run `call` once per key. A concurrent second request waits briefly for the first answer."""
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(key=key, request_hash=fingerprint)
    except IntegrityError:
        return _previous_answer(key=key, fingerprint=fingerprint)
    try:
        status, body = call()
    except BaseException:
        # Nothing was answered: free the key so the client's retry runs instead of waiting forever.
        IdempotencyRecord.objects.filter(pk=record.pk).delete()
        raise
    IdempotencyRecord.objects.filter(pk=record.pk).update(response_status=status, response_body=body)
    return status, body


def _previous_answer(*, key: str, fingerprint: str) -> tuple[int, dict]:
    deadline = time.monotonic() + WAIT_FOR_FIRST_SECONDS
    while True:
        record = IdempotencyRecord.objects.get(key=key)
        if record.request_hash != fingerprint:
            raise IdempotencyConflict
        if record.response_status is not None:
            return record.response_status, record.response_body
        if time.monotonic() > deadline:
            raise IdempotencyInProgress
        time.sleep(0.1)
