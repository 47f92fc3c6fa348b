"""Timed, real-HTTP callback delivery for every simulator.

A single scheduler thread holds the timeline (so hundreds of pending charges cost one thread, not one
timer each) and hands due jobs to a small worker pool. Delays are multiplied by the time scale so tests can
run the 1 s / 10 s / 30 s script ten or twenty times faster.
"""

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

import requests

from payments.sandbox.store import Charge, Delivery, SandboxStore, utc_now

logger = logging.getLogger("payments.sandbox")

DELIVERY_TIMEOUT_SECONDS = 10.0
RESPONSE_SNIPPET_CHARS = 500
BURST_RELEASE_TIMEOUT_SECONDS = 5.0


class CallbackDispatcher:
    def __init__(self, store: SandboxStore, *, time_scale: float = 1.0, workers: int = 16) -> None:
        self.store = store
        self.time_scale = time_scale
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox-callback")
        self._thread = threading.Thread(target=self._run, name="sandbox-scheduler", daemon=True)
        self._thread.start()

    def scaled(self, seconds: float) -> float:
        return max(0.0, seconds * self.time_scale)

    def call_later(self, seconds: float, job: Callable[[], None]) -> None:
        """Run `job` on a worker after `seconds` (unscaled), unless the store was reset meanwhile."""
        generation = self.store.generation

        def guarded() -> None:
            if self.store.generation != generation:
                return  # reset since: this callback belongs to a previous test or demo run
            try:
                job()
            except Exception:  # a worker must never die silently; the next job still runs
                logger.exception("Sandbox job failed")

        with self._cond:
            if self._stopped:
                return
            heapq.heappush(self._heap, (time.monotonic() + self.scaled(seconds), next(self._seq), guarded))
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                _, _, job = heapq.heappop(self._heap)
            try:
                self._pool.submit(job)
            except RuntimeError:  # the pool was shut down between the check and the submit
                return

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify_all()
        self._thread.join(timeout=2)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- delivery ------------------------------------------------------------------------------------

    def post(
        self,
        charge: Charge,
        url: str,
        body: bytes,
        *,
        label: str,
        headers: Mapping[str, str] | None = None,
        method: str = "POST",
    ) -> Delivery:
        """Deliver one callback over real HTTP and record the attempt on the charge. Never raises."""
        started = time.monotonic()
        delivery = Delivery(label=label, url=url, at=utc_now())
        try:
            response = requests.request(
                method,
                url,
                data=body,
                timeout=DELIVERY_TIMEOUT_SECONDS,
                headers={"Content-Type": "application/json", "User-Agent": "payments-sandbox/1.0", **(headers or {})},
                allow_redirects=False,  # a redirecting callback URL is a site bug worth seeing, not following
            )
            delivery.http_status = response.status_code
            delivery.response = response.text[:RESPONSE_SNIPPET_CHARS]
        except requests.RequestException as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"[:RESPONSE_SNIPPET_CHARS]
        delivery.duration_ms = int((time.monotonic() - started) * 1000)
        self.store.add_delivery(charge, delivery)
        logger.info(
            "Sandbox callback %s %s for %s/%s -> %s",
            label,
            url,
            charge.provider,
            charge.transaction_id,
            delivery.http_status or delivery.error,
        )
        return delivery

    def post_burst(
        self,
        charge: Charge,
        url: str,
        body: bytes,
        *,
        label: str,
        copies: int,
        headers: Mapping[str, str] | None = None,
        method: str = "POST",
    ) -> None:
        """`copies` identical deliveries released together, as a provider retrying in parallel would."""
        # Own threads, not the pool: a barrier over pool workers could wait forever when the pool is busy.
        barrier = threading.Barrier(copies)

        def one() -> None:
            try:
                barrier.wait(timeout=BURST_RELEASE_TIMEOUT_SECONDS)
            except threading.BrokenBarrierError:
                pass  # deliver anyway; late is still a duplicate
            self.post(charge, url, body, label=label, headers=headers, method=method)

        threads = [threading.Thread(target=one, name=f"sandbox-burst-{i}", daemon=True) for i in range(copies)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=DELIVERY_TIMEOUT_SECONDS + BURST_RELEASE_TIMEOUT_SECONDS + 1)
