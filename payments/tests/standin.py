"""A stand-in for our site in the sandbox and simulate_callback tests: an HTTP server on 127.0.0.1 that records
every callback delivered to it (method, path, JSON body, arrival time) and answers with the acknowledgement the
real view gives, so a simulator's deliveries can be read back without the whole site running."""

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

from payments.sandbox.server import serve_in_thread


class Delivery(NamedTuple):
    method: str
    path: str
    body: dict[str, Any]
    at: float  # time.monotonic() on arrival


class StandInSite(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, ack: dict[str, Any], path: str = "/") -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.ack = json.dumps(ack).encode()
        self.path = path
        self.deliveries: list[Delivery] = []
        self.cond = threading.Condition()

    @property
    def base(self) -> str:
        return "http://{}:{}".format(*self.server_address[:2])

    @property
    def url(self) -> str:
        return self.base + self.path

    @property
    def bodies(self) -> list[dict[str, Any]]:
        with self.cond:
            return [delivery.body for delivery in self.deliveries]

    def record(self, delivery: Delivery) -> None:
        with self.cond:
            self.deliveries.append(delivery)
            self.cond.notify_all()

    def clear(self) -> None:
        with self.cond:
            self.deliveries.clear()

    def wait_for(self, count: int, timeout: float = 3.0) -> list[Delivery]:
        """What arrived once `count` deliveries have, or when `timeout` seconds have passed."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.deliveries) < count and time.monotonic() < deadline:
                self.cond.wait(deadline - time.monotonic())
            return list(self.deliveries)

    def wait_for_bodies(self, count: int, timeout: float = 3.0) -> list[dict[str, Any]]:
        return [delivery.body for delivery in self.wait_for(count, timeout)]


class _Recorder(BaseHTTPRequestHandler):
    server: StandInSite

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.record(Delivery(self.command, self.path, json.loads(raw), time.monotonic()))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.server.ack)))
        self.end_headers()
        self.wfile.write(self.server.ack)

    do_PUT = do_POST  # MTN delivers its callbacks with PUT

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet


@contextmanager
def standin_site(ack: dict[str, Any], path: str = "/") -> Iterator[StandInSite]:
    site = StandInSite(ack, path)
    serve_in_thread(site, name="standin-site")
    try:
        yield site
    finally:
        site.shutdown()
        site.server_close()
