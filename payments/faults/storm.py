"""The storm: deliveries (the exact bytes of one provider callback, where they go, what they should credit) and the
driver that sends them like providers do: resent with backoff until a 2xx, some twice on purpose.
"""

from __future__ import annotations

import http.client
import json
import queue
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from payments.faults.processes import HOST

ERROR_KEYS = frozenset({"error", "message", "code"})
RAILS = ("azampay", "stk", "c2b", "b2c", "mtn", "airtel")


@dataclass(frozen=True)
class Delivery:
    """One provider callback: the exact bytes, where they go and what they should credit (key)."""

    rail: str
    key: str  # our payment reference (AzamPay, STK, MTN, Airtel), the TransID (C2B), the payout reference (B2C)
    path: str
    body: bytes
    amount: Decimal
    needle: str = ""  # a string only this callback's body contains (to find its inbox rows); default key
    variant: str = ""  # C2B: hashed or masked MSISDN
    duplicate: bool = False  # sent a second time on purpose after its 2xx
    method: str = "POST"  # MTN delivers by PUT
    # What the provider sandbox must learn to answer the site's status query about it paid (POST /_sandbox/learn)
    learn: tuple[tuple[str, str], ...] = ()

    @property
    def marker(self) -> str:
        return self.needle or self.key

    @property
    def label(self) -> str:
        return f"{self.rail} ({self.variant})" if self.variant else self.rail


@dataclass(frozen=True)
class Attempt:
    copy: int  # 1 = the delivery, 2 = the deliberate duplicate
    started: float
    finished: float
    status: int | None  # None: no HTTP answer (connection refused or reset: a killed worker)
    content_type: str = ""
    body: bytes = b""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def has_error_shape(self) -> bool:
        data = self.json()
        return self.content_type.startswith("application/json") and isinstance(data, dict) and ERROR_KEYS <= set(data)

    def describe(self) -> str:
        if self.status is None:
            return f"no answer ({self.error})"
        return f"HTTP {self.status} {self.content_type.split(';')[0]} {self.body[:160].decode(errors='replace')}"


@dataclass
class DeliveryRecord:
    delivery: Delivery
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def acknowledged(self) -> bool:
        return any(attempt.ok for attempt in self.attempts)


def post_once(port: int, delivery: Delivery, copy: int, timeout: float = 20.0) -> Attempt:
    started = time.monotonic()
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request(
            delivery.method,
            delivery.path,
            body=delivery.body,
            headers={"Content-Type": "application/json", "User-Agent": f"fault-storm/{delivery.rail}"},
        )
        response = connection.getresponse()
        body = response.read()
        return Attempt(copy, started, time.monotonic(), response.status, response.getheader("Content-Type", ""), body)
    except (OSError, http.client.HTTPException) as exc:
        return Attempt(copy, started, time.monotonic(), None, error=f"{type(exc).__name__}: {exc}"[:200])
    finally:
        connection.close()


class StormDriver:
    """Sender threads deliver like providers: each callback is resent (same bytes, exponential backoff with
    jitter) until it gets a 2xx or give_up_after seconds pass; the duplicates are queued again after their
    2xx. pace: at least this many seconds between two new deliveries (0: as fast as the senders go).
    max_seconds bounds the whole storm: after it nothing new is sent (what is left stays unacknowledged)."""

    def __init__(
        self,
        port: int,
        deliveries: Iterable[Delivery],
        *,
        senders: int = 6,
        pace: float = 0.0,
        give_up_after: float = 60.0,
        backoff: tuple[float, float] = (0.05, 1.0),
        max_seconds: float = 300.0,
        seed: int = 11,
    ) -> None:
        self.port = port
        self.records = [DeliveryRecord(delivery) for delivery in deliveries]
        self.senders = senders
        self.pace = pace
        self.give_up_after = give_up_after
        self.backoff = backoff
        self.max_seconds = max_seconds
        self.seed = seed
        self.started = 0.0
        self.finished = 0.0
        self._jobs: queue.Queue[tuple[DeliveryRecord, int]] = queue.Queue()
        self._outstanding = 0
        self._lock = threading.Lock()
        self._next_start = 0.0

    def run(self) -> list[DeliveryRecord]:
        for record in self.records:
            self._jobs.put((record, 1))
        self._outstanding = len(self.records) + sum(record.delivery.duplicate for record in self.records)
        self.started = self._next_start = time.monotonic()
        threads = [
            threading.Thread(target=self._sender, args=(random.Random(self.seed + i),), name=f"sender-{i}")
            for i in range(self.senders)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.finished = time.monotonic()
        return self.records

    @property
    def out_of_time(self) -> bool:
        return time.monotonic() - self.started > self.max_seconds

    def _sender(self, rng: random.Random) -> None:
        while not self.out_of_time:
            with self._lock:
                if self._outstanding == 0:
                    return
            try:
                record, copy = self._jobs.get(timeout=0.1)
            except queue.Empty:
                continue
            acknowledged = False
            try:
                self._wait_for_turn()
                acknowledged = self._deliver(record, copy, rng)
            finally:
                self._done(record, copy, acknowledged)

    def _done(self, record: DeliveryRecord, copy: int, acknowledged: bool) -> None:
        twice = copy == 1 and record.delivery.duplicate
        with self._lock:
            self._outstanding -= 1
            if twice and not acknowledged:
                self._outstanding -= 1  # the provider gave up: no duplicate either
        if twice and acknowledged:
            self._jobs.put((record, 2))

    def _wait_for_turn(self) -> None:
        if not self.pace:
            return
        with self._lock:
            start, self._next_start = self._next_start, max(self._next_start, time.monotonic()) + self.pace
        time.sleep(max(0.0, start - time.monotonic()))

    def _deliver(self, record: DeliveryRecord, copy: int, rng: random.Random) -> bool:
        deadline = time.monotonic() + self.give_up_after
        base, cap = self.backoff
        retry = 0
        while not self.out_of_time:
            attempt = post_once(self.port, record.delivery, copy)
            record.attempts.append(attempt)
            if attempt.ok:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(cap, base * 2 ** min(retry, 10)) * rng.uniform(0.5, 1.0))
            retry += 1
        return False
