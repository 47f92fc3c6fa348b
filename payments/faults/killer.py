"""Faults in time: the worker killer (SIGKILLs a gunicorn worker that is serving a request) and scheduled outages
(a service down for a while mid-storm), each recording when it struck so the accounting can match answers to it.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from payments.faults.processes import Gunicorn, process_age, serving_workers, wait_until


class WorkerKiller:
    """SIGKILLs a random gunicorn worker every uniform(*interval) seconds; the master respawns it.

    The victim is picked among the workers serving a request at that moment (see serving_workers); when none
    is, the killer looks again every 10 ms for up to 0.3 s, then waits for its next turn. Workers younger
    than min_age (still importing Django) are spared.
    """

    def __init__(
        self, gunicorn: Gunicorn, *, interval: tuple[float, float] = (0.2, 1.0), min_age: float = 1.0, seed: int = 7
    ) -> None:
        self.gunicorn = gunicorn
        self.interval = interval
        self.min_age = min_age
        self.kills: list[tuple[float, int]] = []
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-killer", daemon=True)

    def __enter__(self) -> WorkerKiller:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self._rng.uniform(*self.interval)):
            deadline = time.monotonic() + 0.3
            while not self._stop.is_set() and time.monotonic() < deadline:
                if self._kill_one():
                    break
                time.sleep(0.01)

    def _kill_one(self) -> bool:
        grown = [pid for pid in self.gunicorn.worker_pids() if (process_age(pid) or 0) >= self.min_age]
        victims = serving_workers(self.gunicorn.port, grown)
        if not victims:
            return False
        pid = self._rng.choice(victims)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        self.kills.append((time.monotonic(), pid))
        return True


@dataclass
class Window:
    """When a service was down (time.monotonic())."""

    name: str
    started: float = 0.0
    ended: float = 0.0

    def covers(self, moment: float) -> bool:
        return self.started <= moment <= self.ended


class ScheduledOutage:
    """Takes a service down `after` seconds into the storm for `duration` seconds, then brings it back.

    `when` (optional) is polled every 5 ms for up to a second after `after`: the outage starts as soon as it
    holds, e.g. while a worker is serving a request, so that some request is caught half-way.
    """

    def __init__(
        self,
        name: str,
        *,
        after: float,
        duration: float,
        down: Callable[[], None],
        up: Callable[[], None],
        when: Callable[[], bool] | None = None,
    ) -> None:
        self.window = Window(name)
        self.after = after
        self.duration = duration
        self._down = down
        self._up = up
        self._when = when
        self._thread = threading.Thread(target=self._run, name=f"outage-{name}", daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> ScheduledOutage:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._thread.join(self.after + self.duration + 30)

    def _run(self) -> None:
        try:
            time.sleep(self.after)
            if self._when is not None:
                wait_until(self._when, timeout=1.0, interval=0.005)
            self.window.started = time.monotonic()
            self._down()
            time.sleep(self.duration)
            self._up()
            self.window.ended = time.monotonic()
        except BaseException as exc:  # reported by the scenario
            self.error = exc
            self.window.ended = self.window.ended or time.monotonic()
