"""Fault harness: real gunicorn, a fake Daraja/AzamPay/MTN MoMo/Airtel Money, a TCP proxy that can cut MariaDB, a
private redis-server, a storm driver with a worker killer, and the accounting of what became of every callback.

What it proves (with test_faults.py and bench/fault_storm.py): the promise "every acknowledged provider
callback ends credited exactly once (or held for review), nothing lost, verify_ledger clean" under real
faults, or exactly which callbacks broke it. Everything listens on 127.0.0.1 only; every process is started
in its own session by the object that owns it and stopped by that object (never by name). Importing this
module is free and touches no database: only seed_storm(), account() and the evidence helpers use the ORM.
How long it takes depends on the caller (the pytest module: about 2-3 minutes).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import queue
import random
import re
import secrets as secrets_module
import shutil
import signal
import socket
import string
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent  # the virtualenv running us: its python and gunicorn
HOST = "127.0.0.1"
MARIADB_PORT = 3306
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"

AZAMPAY_PATH = "/api/v1.0/donors/payment/azampay/callback/"
STK_PATH = "/webhooks/mpesa/stkpush/"
C2B_PATH = "/webhooks/paybill/confirmation/{token}/"
B2C_PATH = "/webhooks/mpesa/b2c/result/{token}/"
MTN_PATH = "/webhooks/mtn/collection/{token}/"  # the payment's secret X-Callback-Url; MTN delivers it by PUT
AIRTEL_PATH = "/webhooks/airtel/payment/"  # the one URL set on Airtel's portal
RAILS = ("azampay", "stk", "c2b", "b2c", "mtn", "airtel")
MPESA_SHORTCODE = "174379"
MTN_API_USER = "0c6f5d2e-8b1a-4c3d-9e7f-2a4b6c8d0e1f"  # MTN API users are UUIDs
MTN_STATUS_PATH = "/collection/v1_0/requesttopay/{reference_id}"
AIRTEL_ENQUIRY_PATH = "/standard/v1/payments/{transaction_id}"
ERROR_KEYS = frozenset({"error", "message", "code"})
HASHED_MSISDN = "hashed msisdn"
MASKED_MSISDN = "masked msisdn"


def free_port() -> int:
    """A port nobody listens on right now (bind port 0, read it back)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# --- configuration ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Secrets:
    """The shared secrets of one run: AzamPay's callback password, the C2B/B2C URL tokens, gunicorn's SECRET_KEY
    (it keys the digests of the payments' own callback URL secrets: MTN's) and AIRTEL_CALLBACK_SECRET (the key of
    Airtel's callback `hash`)."""

    azampay_password: str
    c2b_token: str
    b2c_token: str
    secret_key: str
    airtel_callback_secret: str = ""

    @classmethod
    def generate(cls) -> Secrets:
        token = secrets_module.token_urlsafe
        return cls(token(24), token(32), token(32), token(48), token(32))


def app_env(
    *, database_url: str, provider_url: str, log_dir: Path, secrets: Secrets, cache_url: str = ""
) -> dict[str, str]:
    """The production-like environment of gunicorn and of the operator's manage.py commands.

    Built from scratch (not inherited) so nothing of the caller leaks in: no PAYMENTS_SANDBOX_URL, no test
    settings. AzamPay's auth and API hosts, MTN's and Airtel's API hosts point at the fake provider too, so
    reconcile_payments never leaves 127.0.0.1. MTN and Airtel collect UGX in Uganda (MTN's `mtnuganda`
    environment); Airtel's callbacks are authenticated with AIRTEL_CALLBACK_SECRET.
    """
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR") if key in os.environ}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PYTHONUNBUFFERED": "1",
            "DEBUG": "0",
            "SECRET_KEY": secrets.secret_key,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": database_url,
            "CONN_MAX_AGE": "60",
            "TASKS_BACKEND": "immediate",
            "LOG_DIR": str(log_dir),
            "WEBHOOK_RATE_LIMIT_PER_MINUTE": "1000000",
            "HEALTH_RATE_LIMIT_PER_MINUTE": "1000000",
            "AZAMPAY_CLIENT_ID": "fault-client",
            "AZAMPAY_CALLBACK_PASSWORD": secrets.azampay_password,
            "AZAMPAY_AUTH_URL": provider_url,
            "AZAMPAY_API_URL": provider_url,
            "MPESA_CONSUMER_KEY": "k",
            "MPESA_CONSUMER_SECRET": "s",
            "MPESA_PASSKEY": "p",
            "MPESA_SHORTCODE": MPESA_SHORTCODE,
            "MPESA_API_URL": provider_url,
            "MPESA_C2B_TOKEN": secrets.c2b_token,
            "MPESA_B2C_TOKEN": secrets.b2c_token,
            "MPESA_B2C_SHORTCODE": "600992",
            "MPESA_INITIATOR_NAME": "testapi",
            "MPESA_SECURITY_CREDENTIAL": "x",
            "MTN_API_URL": provider_url,
            "MTN_TARGET_ENVIRONMENT": "mtnuganda",
            "MTN_CURRENCY": "UGX",
            "MTN_API_USER": MTN_API_USER,
            "MTN_API_KEY": "fault-mtn-api-key",
            "MTN_COLLECTION_SUBSCRIPTION_KEY": "fault-mtn-collection-key",
            "MTN_DISBURSEMENT_SUBSCRIPTION_KEY": "fault-mtn-disbursement-key",
            "AIRTEL_API_URL": provider_url,
            "AIRTEL_CLIENT_ID": "fault-airtel-client",
            "AIRTEL_CLIENT_SECRET": "fault-airtel-secret",
            "AIRTEL_COUNTRY": "UG",
            "AIRTEL_CURRENCY": "UGX",
            "AIRTEL_CALLBACK_SECRET": secrets.airtel_callback_secret,
            "PROVIDER_CONNECT_TIMEOUT": "2",
            "PROVIDER_READ_TIMEOUT": "5",
        }
    )
    if cache_url:
        env["CACHE_URL"] = cache_url
    return env


# --- the far side: Daraja, AzamPay, MTN MoMo and Airtel Money ------------------------------------------


class _ProviderServer(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeProviders

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a worker SIGKILLed while it waits for our answer resets the connection: expected here


class _ProviderHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProviderServer

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        self._reply("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._reply("POST")

    def _reply(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        status, payload = self.server.fake.answer(method, urlsplit(self.path).path, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the http.server signature)
        pass


class FakeProviders:
    """Daraja (OAuth, STK Push Query), AzamPay (token, transaction status), MTN MoMo (both products' tokens, the
    request-to-pay status GET) and Airtel Money (OAuth, the transaction enquiry) in this process.

    Every payment the storm seeds was really paid, so Daraja's and AzamPay's status APIs answer "paid" for
    whatever is asked (shapes of payments/tests/fixtures/{mpesa/query_success,azampay/status_success}.json).
    MTN's and Airtel's answer "paid" for the references the storm seeded (`learn`, from the deliveries: the
    status object MTN holds for an X-Reference-Id, Airtel's TS for our transaction id) and "not found" for any
    other (MTN: 404 RESOURCE_NOT_FOUND; Airtel: ESB000045), as they would.
    """

    def __init__(self, deliveries: Iterable[Delivery] = ()) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.paid: dict[str, Any] = {}
        self.learn(deliveries)
        self._server = _ProviderServer((HOST, 0), _ProviderHandler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-providers", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}"

    def start(self) -> FakeProviders:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def learn(self, deliveries: Iterable[Delivery]) -> FakeProviders:
        """The status answers of the seeded payments: GET path → the provider's JSON body."""
        with self._lock:
            self.paid.update({d.status_path: json.loads(d.status_answer) for d in deliveries if d.status_path})
        return self

    def answer(self, method: str, path: str, body: dict) -> tuple[int, dict]:
        with self._lock:
            # Counted per route, not per id (an MTN or Airtel GET names one payment each).
            route = path.rsplit("/", 1)[0] + "/{id}" if path.startswith(("/collection/v1_0/", "/standard/")) else path
            self.calls[f"{method} {route}"] += 1
            known = self.paid.get(path) if method == "GET" else None
        if method == "GET" and path == "/oauth/v1/generate":
            return 200, {"access_token": "fault-daraja-token", "expires_in": "3599"}
        if method == "POST" and path == "/mpesa/stkpushquery/v1/query":
            return 200, {
                "ResponseCode": "0",
                "ResponseDescription": "The service request has been accepted successfully",
                "MerchantRequestID": "22205-34066-1",
                "CheckoutRequestID": str(body.get("CheckoutRequestID", "")),
                "ResultCode": "0",
                "ResultDesc": "The service request is processed successfully.",
            }
        if method == "POST" and path == "/AppRegistration/GenerateToken":
            return 200, {
                "data": {"accessToken": "fault-azampay-token", "expire": "2099-03-02T04:21:29Z"},
                "message": "Token generated successfully",
                "success": True,
                "statusCode": 200,
            }
        if method == "GET" and path == "/azampay/gettransactionstatus":
            return 200, {"data": "Transaction successful.", "message": "Request successful.", "success": True}
        if method == "POST" and path in ("/collection/token/", "/disbursement/token/"):
            token = f"fault-mtn-{path.split('/')[1]}-token"
            return 200, {"access_token": token, "token_type": "access_token", "expires_in": 3600}
        if method == "GET" and path.startswith("/collection/v1_0/requesttopay/"):
            if known is None:
                return 404, {"code": "RESOURCE_NOT_FOUND", "message": "Requested resource was not found."}
            return 200, known
        if method == "POST" and path == "/auth/oauth2/token":
            return 200, {"token_type": "bearer", "access_token": "fault-airtel-token", "expires_in": "180"}
        if method == "GET" and path.startswith("/standard/v1/payments/"):
            if known is None:
                return 200, {
                    "status": {
                        "code": "404",
                        "message": "No Transaction Found With Provided Transaction Id.",
                        "result_code": "ESB000045",
                        "success": False,
                    }
                }
            return 200, known
        return 404, {"errorMessage": f"fake provider: nothing at {method} {path}"}


# --- faults: a TCP proxy in front of MariaDB, a private redis-server ---------------------------------------


class TcpProxy:
    """127.0.0.1:<port> → MariaDB. cut() closes every proxied connection and refuses new ones (the port is
    closed: ECONNREFUSED); restore() listens again on the same port."""

    def __init__(self, upstream_port: int = MARIADB_PORT) -> None:
        self.upstream = (HOST, upstream_port)
        self.port = free_port()
        self.connections = 0
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listening = threading.Event()
        self._listener: socket.socket | None = None

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, self.port))
        listener.listen(128)
        listener.settimeout(0.1)
        self._listener = listener
        self._listening.set()
        threading.Thread(target=self._accept_loop, args=(listener,), name="db-proxy", daemon=True).start()
        return self

    restore = start

    def cut(self) -> None:
        self._listening.clear()
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        if listener is not None:
            listener.close()
        for sock in sockets:
            _close(sock)

    close = cut

    def _accept_loop(self, listener: socket.socket) -> None:
        while self._listening.is_set() and self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _close(client)
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._sockets |= {client, upstream}
                self.connections += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets -= {source, sink}
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv()
    with suppress(OSError):
        sock.close()


class RedisServer:
    """A redis-server of our own on a free port (never the system one on 6379), no persistence."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no"]
        command += ["--dir", str(self.workdir)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        if not wait_until(self.ping, timeout=timeout):
            self.kill()
            raise RuntimeError(f"redis-server did not answer PING on port {self.port}")
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the cache vanishes mid-run, as when its host dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    stop = kill


# --- gunicorn and the worker killer ----------------------------------------------------------------------


class Gunicorn:
    """`gunicorn config.wsgi:application --workers N` from the project root, logs in log_dir/gunicorn.log."""

    def __init__(self, env: dict[str, str], log_dir: Path, *, workers: int = 3, timeout: int = 30) -> None:
        self.env = env
        self.log_path = log_dir / "gunicorn.log"
        self.workers = workers
        self.timeout = timeout
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, ready_timeout: float = 60.0) -> Gunicorn:
        command = [str(BIN / "gunicorn"), "config.wsgi:application", "--workers", str(self.workers)]
        command += ["--bind", f"{HOST}:{self.port}", "--timeout", str(self.timeout), "--graceful-timeout", "5"]
        command += ["--no-control-socket"]  # gunicorn 27 otherwise shares ~/.gunicorn/gunicorn.ctl with others
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        if not wait_until(self.healthy, timeout=ready_timeout, interval=0.2):
            self.stop()
            raise RuntimeError(f"gunicorn did not become healthy; log tail:\n{self.log_tail()}")
        return self

    def healthy(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited; log tail:\n{self.log_tail()}")
        try:
            connection = http.client.HTTPConnection(HOST, self.port, timeout=2)
            connection.request("GET", "/health/")
            return connection.getresponse().status == 200
        except OSError:
            return False

    def worker_pids(self) -> list[int]:
        """The master's children, from /proc/<pid>/task/*/children."""
        if self.process is None:
            return []
        pids: list[int] = []
        for children in Path(f"/proc/{self.process.pid}/task").glob("*/children"):
            with suppress(OSError):
                pids += [int(pid) for pid in children.read_text().split()]
        return pids

    def serving(self) -> bool:
        """Is some worker in the middle of a request right now?"""
        return bool(serving_workers(self.port, self.worker_pids()))

    def stop(self) -> None:
        """SIGTERM the master (workers finish what they hold), then SIGKILL its whole session if needed."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self.process = None

    def log_tail(self, lines: int = 30) -> str:
        with suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def process_age(pid: int) -> float | None:
    """Seconds since the process started, from /proc (None when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except OSError:
        return None
    start_ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def serving_workers(port: int, pids: Iterable[int]) -> list[int]:
    """The workers holding an established client connection on `port` right now: serving a request.

    From /proc/net/tcp{,6} (the inodes of established sockets whose local port is gunicorn's) and each
    worker's /proc/<pid>/fd links.
    """
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    serving = []
    for pid in pids:
        with suppress(OSError):
            links = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir() if fd.is_symlink()}
            if links & inodes:
                serving.append(pid)
    return serving


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


# --- the storm -------------------------------------------------------------------------------------------


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
    # MTN, Airtel: what the fake provider's status API answers about this payment (GET path → JSON text)
    status_path: str = ""
    status_answer: str = ""

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


# --- seeding (Django ORM) ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StormPlan:
    azampay: int
    stk: int
    c2b: int
    b2c: int
    mtn: int = 0
    airtel: int = 0
    duplicate_share: float = 0.10
    hashed_msisdn_share: float = 0.75  # C2B confirmations with the 2024+ hashed MSISDN; the rest masked

    @classmethod
    def spread(cls, deliveries: int, **options: float) -> StormPlan:
        """`deliveries` split over the six delivery kinds (RAILS) as evenly as possible."""
        share, extra = divmod(deliveries, len(RAILS))
        counts = [share + (1 if i < extra else 0) for i in range(len(RAILS))]
        return cls(*counts, **options)

    @property
    def total(self) -> int:
        return self.azampay + self.stk + self.c2b + self.b2c + self.mtn + self.airtel


@dataclass(frozen=True)
class Cast:
    """The rows every delivery points at."""

    tzs_patients: list[Any]
    kes_patients: list[Any]
    ugx_patients: list[Any]  # MTN and Airtel (Uganda)
    payout_patient: Any
    maker: Any
    checker: Any


def seed_storm(plan: StormPlan, secrets: Secrets, *, seed: int = 1) -> list[Delivery]:
    """Pending payments and sent payouts in the current database, and the callback bodies that settle them.

    Patients have goals no storm reaches, so none stops accepting donations mid-run. ~duplicate_share of the
    deliveries are marked to be sent twice. MTN and Airtel deliveries carry what their status APIs must answer
    (give the deliveries to FaultRig, whose fake provider learns it).
    """
    from django.db import transaction

    rng = random.Random(seed)
    with transaction.atomic():
        cast = _seed_cast(rng)
        deliveries = [_azampay_delivery(cast, secrets, rng) for _ in range(plan.azampay)]
        deliveries += [_stk_delivery(cast, rng) for _ in range(plan.stk)]
        deliveries += [_c2b_delivery(cast, secrets, rng, plan.hashed_msisdn_share) for _ in range(plan.c2b)]
        deliveries += [_b2c_delivery(cast, secrets, rng) for _ in range(plan.b2c)]
        deliveries += [_mtn_delivery(cast, secrets, rng) for _ in range(plan.mtn)]
        deliveries += [_airtel_delivery(cast, secrets, rng) for _ in range(plan.airtel)]
    rng.shuffle(deliveries)
    twice = set(rng.sample(range(len(deliveries)), round(len(deliveries) * plan.duplicate_share)))
    return [replace(delivery, duplicate=i in twice) for i, delivery in enumerate(deliveries)]


GOAL = Decimal("9000000000")  # never reached: nobody becomes fully funded mid-run


def _seed_cast(rng: random.Random) -> Cast:
    from django.contrib.auth import get_user_model

    from patients.models import Patient, TreatmentPartner

    tag = f"{rng.getrandbits(24):06X}"
    partner = TreatmentPartner.objects.create(
        name=f"Fault Hospital {tag}", country="KE", payout_provider="mpesa", payout_msisdn="254708374149"
    )

    def patient(code: str, currency: str) -> Patient:
        return Patient.objects.create(
            code=f"FLT{tag}-{code}",
            name=f"Fault Patient {code}",
            currency=currency,
            funding_goal=GOAL,
            published=True,
            treatment_partner=partner,
        )

    users = get_user_model().objects
    return Cast(
        tzs_patients=[patient(f"TZ{i}", "TZS") for i in range(3)],
        kes_patients=[patient(f"KE{i}", "KES") for i in range(3)],
        ugx_patients=[patient(f"UG{i}", "UGX") for i in range(3)],
        payout_patient=patient("PO", "KES"),
        maker=users.create_user(f"fault-maker-{tag}", is_staff=True),
        checker=users.create_user(f"fault-checker-{tag}", is_staff=True),
    )


def _pending_payment(
    patients: list[Any],
    rng: random.Random,
    *,
    amount: Decimal,
    provider: str,
    channel: str,
    msisdn: str,
    ref: str | None,
    external_id: Callable[[str], str] = str,
    token_digest: str | None = None,
) -> Any:
    from donor.services import donation_create, donor_for_guest
    from payments.models import Payment

    patient = rng.choice(patients)
    donor = donor_for_guest(name="Fault Donor", phone=msisdn)
    donation = donation_create(patient=patient, amount=amount, currency=patient.currency, donor=donor)
    return Payment.objects.create(
        donation=donation,
        reference=donation.reference,
        external_id=external_id(donation.reference),
        provider=provider,
        channel=channel,
        msisdn=msisdn,
        amount=amount,
        currency=patient.currency,
        status=Payment.Status.PENDING,
        provider_reference=ref,
        callback_token_digest=token_digest,
    )


def _azampay_delivery(cast: Cast, secrets: Secrets, rng: random.Random) -> Delivery:
    amount = Decimal(rng.choice((1000, 2500, 5000, 10000, 20000)))
    ref = f"{rng.getrandbits(128):032x}"
    msisdn = f"2557{rng.randrange(10**8):08d}"
    payment = _pending_payment(
        cast.tzs_patients, rng, amount=amount, provider="azampay", channel="Mpesa", msisdn=msisdn, ref=ref
    )
    body = {  # fixtures/azampay/callback_real_sandbox.json, pointed at our payment
        "message": "success",
        "transactionstatus": "success",
        "operator": "Mpesa",
        "reference": ref,
        "externalreference": ref,
        "utilityref": payment.reference,
        "amount": f"{amount:.0f}",
        "transid": ref,
        "msisdn": msisdn,
        "mnoreference": str(uuid.UUID(int=rng.getrandbits(128))),
        "password": secrets.azampay_password,
    }
    return Delivery("azampay", payment.reference, AZAMPAY_PATH, _bytes(body), amount)


def _stk_delivery(cast: Cast, rng: random.Random) -> Delivery:
    amount = Decimal(rng.choice((50, 100, 250, 500, 1000)))
    checkout = f"ws_CO_{rng.getrandbits(64):020d}"
    msisdn = f"2547{rng.randrange(10**8):08d}"
    payment = _pending_payment(
        cast.kes_patients, rng, amount=amount, provider="mpesa", channel="", msisdn=msisdn, ref=checkout
    )
    items = [
        {"Name": "Amount", "Value": int(amount)},
        {"Name": "MpesaReceiptNumber", "Value": _mpesa_id(rng)},
        {"Name": "TransactionDate", "Value": int(_stamp())},
        {"Name": "PhoneNumber", "Value": int(msisdn)},
    ]
    body = {  # fixtures/mpesa/callback_success_documented.json
        "Body": {
            "stkCallback": {
                "MerchantRequestID": f"{rng.randrange(10**5)}-{rng.randrange(10**8)}-1",
                "CheckoutRequestID": checkout,
                "ResultCode": 0,
                "ResultDesc": "The service request is processed successfully.",
                "CallbackMetadata": {"Item": items},
            }
        }
    }
    return Delivery("stk", payment.reference, STK_PATH, _bytes(body), amount, needle=checkout)


def _c2b_delivery(cast: Cast, secrets: Secrets, rng: random.Random, hashed_share: float) -> Delivery:
    amount = Decimal(rng.choice((100, 150, 500, 1000, 2000)))
    trans_id = _mpesa_id(rng)
    hashed = rng.random() < hashed_share
    phone = f"2547{rng.randrange(10**8):08d}"
    msisdn = hashlib.sha256(phone.encode()).hexdigest() if hashed else f"2547 ***** {phone[-3:]}"
    body = {  # Daraja's C2B v2 confirmation (payments/tests/services/test_paybill.py)
        "TransactionType": "Pay Bill",
        "TransID": trans_id,
        "TransTime": _stamp(),
        "TransAmount": f"{amount:.2f}",
        "BusinessShortCode": MPESA_SHORTCODE,
        "BillRefNumber": rng.choice(cast.kes_patients).code,
        "InvoiceNumber": "",
        "OrgAccountBalance": "",
        "ThirdPartyTransID": "",
        "MSISDN": msisdn,
        "FirstName": "NICHOLAS",
        "MiddleName": "",
        "LastName": "",
    }
    variant = HASHED_MSISDN if hashed else MASKED_MSISDN
    path = C2B_PATH.format(token=secrets.c2b_token)
    return Delivery("c2b", trans_id, path, _bytes(body), amount, variant=variant)


def _b2c_delivery(cast: Cast, secrets: Secrets, rng: random.Random) -> Delivery:
    from django.utils import timezone

    from donor.services import donation_complete, donation_create, donor_for_guest
    from payments.models import Payment, Payout

    amount = Decimal(rng.choice((1000, 5000, 20000)))
    # The money it pays out was received first (verify_ledger proves no patient is paid out more than that).
    gift = donation_create(
        patient=cast.payout_patient, amount=amount, currency="KES", donor=donor_for_guest(name="Fault")
    )
    Payment.objects.create(donation=gift, reference=gift.reference, provider="mpesa", amount=amount, currency="KES",
                           status=Payment.Status.SUCCEEDED, receipt=_mpesa_id(rng))  # fmt: skip
    donation_complete(donation_id=gift.pk)
    now = timezone.now()
    payout = Payout.objects.create(
        reference=f"FLT-PO-{rng.getrandbits(64):016x}",
        patient=cast.payout_patient,
        treatment_partner=cast.payout_patient.treatment_partner,
        provider="mpesa",
        msisdn=cast.payout_patient.treatment_partner.payout_msisdn,
        amount=amount,
        currency="KES",
        status=Payout.Status.SENT,
        requested_by=cast.maker,
        approved_by=cast.checker,
        provider_reference=f"AG_{_stamp()[:8]}_{rng.getrandbits(80):020x}",
        approved_at=now,
        sent_at=now,
    )
    receipt = _mpesa_id(rng)
    parameters = [
        {"Key": "TransactionAmount", "Value": int(amount)},
        {"Key": "TransactionReceipt", "Value": receipt},
        {"Key": "B2CRecipientIsRegisteredCustomer", "Value": "Y"},
        {"Key": "ReceiverPartyPublicName", "Value": "254708374149 - Fault Hospital"},
    ]
    body = {  # Daraja's B2C result (payments/tests/services/test_payouts.py)
        "Result": {
            "ResultType": 0,
            "ResultCode": 0,
            "ResultDesc": "The service request is processed successfully.",
            "OriginatorConversationID": payout.reference,
            "ConversationID": payout.provider_reference,
            "TransactionID": receipt,
            "ResultParameters": {"ResultParameter": parameters},
            "ReferenceData": {"ReferenceItem": {"Key": "QueueTimeoutURL", "Value": "https://example.invalid/timeout"}},
        }
    }
    path = B2C_PATH.format(token=secrets.b2c_token)
    return Delivery("b2c", payout.reference, path, _bytes(body), amount)


def _mtn_delivery(cast: Cast, secrets: Secrets, rng: random.Random) -> Delivery:
    """A request to pay MTN approved: the status object PUT to the payment's own X-Callback-Url (v1 bodies carry
    no referenceId), and the same object as the answer of its status GET."""
    from django.utils.crypto import salted_hmac

    from payments.url_tokens import TOKEN_SALT

    amount = Decimal(rng.choice((1000, 2500, 5000, 10000, 20000)))
    reference_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))  # our X-Reference-Id
    token = "".join(rng.choice(string.ascii_letters + string.digits + "-_") for _ in range(32))
    # payments.url_tokens.url_token_digest, keyed with gunicorn's SECRET_KEY (the seeding process may have another)
    digest = salted_hmac(TOKEN_SALT, token, secret=secrets.secret_key, algorithm="sha256").hexdigest()
    msisdn = f"25677{rng.randrange(10**7):07d}"
    payment = _pending_payment(
        cast.ugx_patients,
        rng,
        amount=amount,
        provider="mtn",
        channel="",
        msisdn=msisdn,
        ref=reference_id,
        token_digest=digest,
    )
    status_object = {  # fixtures/mtn/callback_collection_successful.json, pointed at our payment
        "financialTransactionId": str(rng.randrange(10**8, 10**9)),
        "externalId": payment.reference,
        "amount": f"{amount:.0f}",
        "currency": "UGX",
        "payer": {"partyIdType": "MSISDN", "partyId": msisdn},
        "payerMessage": f"Donation {payment.reference}",
        "payeeNote": f"Donation {payment.reference}",
        "status": "SUCCESSFUL",
    }
    return Delivery(
        "mtn",
        payment.reference,
        MTN_PATH.format(token=token),
        _bytes(status_object),
        amount,
        method="PUT",
        status_path=MTN_STATUS_PATH.format(reference_id=reference_id),
        status_answer=json.dumps(status_object),
    )


def _airtel_delivery(cast: Cast, secrets: Secrets, rng: random.Random) -> Delivery:
    """A USSD push approved: Airtel's collection callback with its `hash`, and its enquiry's TS."""
    from payments.providers.airtel.client import airtel_id

    amount = Decimal(rng.choice((1000, 2500, 5000, 10000, 20000)))
    msisdn = f"25675{rng.randrange(10**7):07d}"
    payment = _pending_payment(
        cast.ugx_patients,
        rng,
        amount=amount,
        provider="airtel",
        channel="",
        msisdn=msisdn,
        ref=None,
        external_id=airtel_id,
    )
    transaction_id = payment.external_id  # our reference in Airtel's alphabet
    letter = rng.choice(string.ascii_uppercase)  # an airtel_money_id such as MP210603.1234.L06941
    money_id = f"MP{_stamp()[2:8]}.{rng.randrange(10**4):04d}.{letter}{rng.randrange(10**5):05d}"
    transaction = {  # fixtures/airtel/callback_success.json, pointed at our payment
        "id": transaction_id,
        "message": f"Paid UGX {amount:,.0f} to DONATION PORTAL Charge UGX 0, Trans ID {money_id}.",
        "status_code": "TS",
        "airtel_money_id": money_id,
    }
    body = {"transaction": transaction, "hash": airtel_hash(secrets.airtel_callback_secret, transaction)}
    answer = {"airtel_money_id": money_id, "id": transaction_id, "message": "success", "status": "TS"}
    status = {"code": "200", "message": "SUCCESS", "result_code": "ESB000010", "response_code": "DP00800001001"}
    enquiry = {"data": {"transaction": answer}, "status": {**status, "success": True}}  # fixtures: enquiry_success
    return Delivery(
        "airtel",
        payment.reference,
        AIRTEL_PATH,
        _bytes(body),
        amount,
        needle=transaction_id,
        status_path=AIRTEL_ENQUIRY_PATH.format(transaction_id=transaction_id),
        status_answer=json.dumps(enquiry),
    )


def airtel_hash(secret: str, transaction: dict) -> str:
    """Airtel's callback `hash`: Base64(HMAC-SHA256(secret, compact JSON of `transaction`)), written here as Airtel's
    side (payments/sandbox/airtel.py has the same; the adapter checks it)."""
    signed = json.dumps(transaction, separators=(",", ":")).encode()
    return base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()


def _bytes(body: dict) -> bytes:
    return json.dumps(body).encode()


def _stamp() -> str:
    return datetime.now().strftime("%Y%m%d%H%M%S")  # noqa: DTZ005 (Daraja sends naive Nairobi time)


def _mpesa_id(rng: random.Random) -> str:
    """A Safaricom-style transaction id such as RKL51ZDR4F (10 upper-case letters and digits)."""
    alphabet = string.ascii_uppercase + string.digits
    return "S" + "".join(rng.choice(alphabet) for _ in range(9))


# --- accounting (Django ORM) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    credits: int  # how many times the delivery's money landed in the ledger (payout: paid = 1)
    flagged: bool  # the payment, donation or payout itself is marked needs_review
    review_event: bool  # an inbox row for this callback ended in `review`
    state: str  # a one-line description for the report

    @property
    def held_for_review(self) -> bool:
        return self.flagged or (self.credits == 0 and self.review_event)


@dataclass
class RailFigures:
    rail: str
    deliveries: int = 0
    sends: int = 0
    killed: int = 0  # attempts that got no HTTP answer (the worker died under them, or nothing listened)
    acknowledged: int = 0
    credited: int = 0  # exactly once, nothing flagged
    review: int = 0  # held for review (flagged, or not credited with its inbox row in review)
    lost: int = 0  # acknowledged, yet neither credited nor held for review
    unacknowledged: int = 0  # never got a 2xx: the provider still has it
    extra: int = 0  # credited more than once
    noisy: int = 0  # credited once, but a repeat of it left an inbox row in `review` (a person will look)
    lost_keys: list[str] = field(default_factory=list)

    def add(self, other: RailFigures) -> None:
        for name in ("deliveries", "sends", "killed", "acknowledged", "credited", "review", "lost"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.unacknowledged += other.unacknowledged
        self.extra += other.extra
        self.noisy += other.noisy
        self.lost_keys += other.lost_keys


def verdict(delivery: Delivery) -> Verdict:
    if delivery.rail in ("azampay", "stk", "mtn", "airtel"):
        return _payment_verdict(delivery.key)
    if delivery.rail == "c2b":
        return _c2b_verdict(delivery.key)
    return _payout_verdict(delivery.key)


def _payment_verdict(reference: str) -> Verdict:
    from donor.models import Allocation
    from payments.models import Payment

    payment = Payment.objects.select_related("donation").get(reference=reference)
    donation = payment.donation
    allocations = Allocation.objects.filter(donation=donation).count()
    settled = payment.status == Payment.Status.SUCCEEDED and donation.status == donation.Status.COMPLETED
    flagged = payment.needs_review or donation.needs_review
    state = f"payment {payment.status}, donation {donation.status}, {allocations} allocation(s)"
    return Verdict(allocations if settled else 0, flagged, _has_review_event(payment=payment), state)


def _c2b_verdict(trans_id: str) -> Verdict:
    from donor.models import Allocation, Donation
    from payments.models import Payment

    payments = list(Payment.objects.select_related("donation").filter(provider="mpesa", provider_reference=trans_id))
    credits = sum(
        Allocation.objects.filter(donation=p.donation).count()
        for p in payments
        if p.status == Payment.Status.SUCCEEDED and p.donation.status == Donation.Status.COMPLETED
    )
    flagged = any(p.needs_review or p.donation.needs_review for p in payments)
    state = f"{len(payments)} payment(s) for TransID: " + (
        ", ".join(f"{p.status}/{p.donation.status}" for p in payments) or "none"
    )
    return Verdict(credits, flagged, _has_review_event(trans_id), state)


def _payout_verdict(reference: str) -> Verdict:
    from payments.models import Payout

    payout = Payout.objects.get(reference=reference)
    paid = 1 if payout.status == Payout.Status.PAID else 0
    return Verdict(paid, payout.needs_review, _has_review_event(reference), f"payout {payout.status}")


def _has_review_event(key: str = "", *, payment: Any = None) -> bool:
    from payments.models import CallbackEvent

    events = CallbackEvent.objects.filter(status=CallbackEvent.Status.REVIEW)
    return (
        events.filter(payment=payment).exists() if payment is not None else events.filter(body__contains=key).exists()
    )


def account(records: Iterable[DeliveryRecord]) -> list[RailFigures]:
    """What became of each delivery, per rail (C2B split by MSISDN form), in a stable order."""
    rows: dict[str, RailFigures] = {}
    for record in records:
        figures = rows.setdefault(record.delivery.label, RailFigures(record.delivery.label))
        result = verdict(record.delivery)
        figures.deliveries += 1
        figures.sends += len(record.attempts)
        figures.killed += sum(attempt.status is None for attempt in record.attempts)
        figures.acknowledged += record.acknowledged
        figures.unacknowledged += not record.acknowledged
        if result.held_for_review:
            figures.review += 1
        elif result.credits > 1:
            figures.extra += 1
        elif result.credits == 1:
            figures.credited += 1
            figures.noisy += result.review_event
        elif record.acknowledged:
            figures.lost += 1
            figures.lost_keys.append(record.delivery.key)
    order = {rail: i for i, rail in enumerate(RAILS)}
    return sorted(rows.values(), key=lambda f: (order.get(f.rail.split()[0], 9), f.rail))


def totals(rows: Iterable[RailFigures]) -> RailFigures:
    total = RailFigures("total")
    for row in rows:
        total.add(row)
    return total


def figures_table(rows: list[RailFigures], kills: int) -> str:
    """The table the bench prints; `kills` column: per rail the attempts a kill (or an outage) left without an
    HTTP answer, on the total line the SIGKILLs sent."""
    header = ("rail", "deliveries", "kills", "acknowledged", "credited", "held for review", "lost", "unacked", "extra")
    total = totals(rows)
    lines = [
        (r.rail, r.deliveries, r.killed, r.acknowledged, r.credited, r.review, r.lost, r.unacknowledged, r.extra)
        for r in rows
    ]
    lines.append(
        ("total", total.deliveries, kills, total.acknowledged, total.credited, total.review, total.lost)
        + (total.unacknowledged, total.extra)
    )
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines, strict=True)]
    render = [
        "  ".join(
            str(cell).ljust(w) if i == 0 else str(cell).rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in (header, *lines)
    ]
    return "\n".join(render)


def figures_line(name: str, rows: list[RailFigures], kills: int) -> str:
    total = totals(rows)
    return (
        f"FIGURES {name}: deliveries={total.deliveries} kills={kills} acknowledged={total.acknowledged} "
        f"credited={total.credited} review={total.review} lost={total.lost} unacknowledged={total.unacknowledged} "
        f"extra={total.extra} credited_with_review_row={total.noisy}"
    )


def ledger_problems() -> list[str]:
    """Half-written or double credits anywhere in the database (independent of what the storm sent)."""
    from django.db.models import Count, Q

    from donor.models import Allocation, Donation
    from donor.selectors import ledger_drift
    from payments.models import Payment

    problems = []
    succeeded = Payment.objects.filter(status=Payment.Status.SUCCEEDED)
    unfinished = succeeded.exclude(donation__status=Donation.Status.COMPLETED).count()
    if unfinished:
        problems.append(f"{unfinished} succeeded payment(s) whose donation is not completed")
    bare = Donation.objects.filter(status=Donation.Status.COMPLETED, allocations__isnull=True).count()
    if bare:
        problems.append(f"{bare} completed donation(s) without an allocation")
    orphans = Allocation.objects.exclude(donation__status=Donation.Status.COMPLETED).count()
    if orphans:
        problems.append(f"{orphans} allocation(s) on a donation that is not completed")
    unpaid = Donation.objects.filter(status=Donation.Status.COMPLETED).exclude(
        payments__status=Payment.Status.SUCCEEDED
    )
    if unpaid.count():
        problems.append(f"{unpaid.count()} completed donation(s) without a succeeded payment")
    twice = (
        Donation.objects.annotate(paid=Count("payments", filter=Q(payments__status=Payment.Status.SUCCEEDED)))
        .filter(paid__gt=1)
        .count()
    )
    if twice:
        problems.append(f"{twice} donation(s) with more than one succeeded payment")
    problems += [f"ledger drift {d.patient.code}: cached {d.cached} vs ledger {d.ledger}" for d in ledger_drift()]
    return problems


# --- evidence --------------------------------------------------------------------------------------------


def inbox_summary() -> str:
    """CallbackEvent rows per provider/kind and status, e.g. `mpesa/c2b_confirmation: processed=40 received=3`."""
    from django.db.models import Count

    from payments.models import CallbackEvent

    rows = CallbackEvent.objects.values("provider", "kind", "status").annotate(n=Count("id")).order_by("provider")
    grouped: dict[str, list[str]] = {}
    for row in rows:
        grouped.setdefault(f"{row['provider']}/{row['kind']}", []).append(f"{row['status']}={row['n']}")
    return "\n".join(f"  {kind}: {' '.join(sorted(counts))}" for kind, counts in sorted(grouped.items()))


def delivery_story(record: DeliveryRecord) -> str:
    """One lost delivery: its answers, what the inbox holds for it, and the state of what it should credit."""
    from payments.models import CallbackEvent

    delivery = record.delivery
    events = CallbackEvent.objects.filter(body__contains=delivery.marker).order_by("pk")
    answers = Counter(a.describe()[:90] for a in record.attempts)
    lines = [f"{delivery.label} {delivery.key}: {verdict(delivery).state}"]
    lines += [f"    answered {n}x: {text}" for text, n in answers.most_common(4)]
    lines += [
        f"    event #{e.pk} {e.status} attempts={e.attempts} duplicate_of={e.duplicate_of_id} error={e.error[:120]!r}"
        for e in events
    ]
    return "\n".join(lines)


def lost_stories(records: Iterable[DeliveryRecord], limit: int = 6) -> str:
    """Acknowledged deliveries that credited nothing and wait for nobody: what they were answered, their rows."""

    def is_lost(record: DeliveryRecord) -> bool:
        result = verdict(record.delivery)
        return record.acknowledged and result.credits == 0 and not result.held_for_review

    return stories([record for record in records if is_lost(record)], limit)


def review_stories(records: Iterable[DeliveryRecord], limit: int = 4) -> str:
    """Deliveries held for review, or credited with an inbox row in review: why (the rows' errors)."""

    def in_review(record: DeliveryRecord) -> bool:
        result = verdict(record.delivery)
        return result.held_for_review or result.review_event

    return stories([record for record in records if in_review(record)], limit)


def stories(records: list[DeliveryRecord], limit: int) -> str:
    """A few delivery_story()s, spread over the rails."""
    by_rail: dict[str, list[DeliveryRecord]] = {}
    for record in records:
        by_rail.setdefault(record.delivery.label, []).append(record)
    picked = [record for group in by_rail.values() for record in group[: max(1, limit // max(1, len(by_rail)))]]
    return "\n".join(delivery_story(record) for record in picked)


EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Warning|Unavailable|Interrupt))(?::\s?(.*))?$")


def exception_counts(log_dir: Path, limit: int = 8) -> list[tuple[str, int]]:
    """The exception lines of the application's errors.log, most frequent first (numbers elided)."""
    path = log_dir / "errors.log"
    if not path.exists():
        return []
    counts: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        match = EXCEPTION_LINE.match(line.strip())
        if match:
            counts[re.sub(r"\d+", "N", line.strip())[:200]] += 1
    return counts.most_common(limit)


def gunicorn_events(log_path: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    with suppress(OSError):
        for line in log_path.read_text(errors="replace").splitlines():
            for needle in ("was sent SIGKILL", "Booting worker", "WORKER TIMEOUT", "Worker exiting", "Shutting down"):
                if needle in line:
                    counts[needle] += 1
    return counts


def answers_in(records: Iterable[DeliveryRecord], window: Window) -> list[tuple[Delivery, Attempt]]:
    """Every answer (or failure to answer) that arrived while the window's service was down."""
    return [(r.delivery, a) for r in records for a in r.attempts if window.covers(a.finished)]


def answer_kinds(answers: Iterable[tuple[Delivery, Attempt]]) -> Counter[str]:
    """`503 json-error`, `500 json-error`, `200`, `no answer`, `500 html` ... with counts."""
    kinds: Counter[str] = Counter()
    for _, attempt in answers:
        if attempt.status is None:
            kinds["no answer: " + attempt.error.split(":")[0]] += 1
        elif attempt.ok:
            kinds[f"{attempt.status}"] += 1
        else:
            shape = "json-error" if attempt.has_error_shape else attempt.content_type.split(";")[0] or "no type"
            kinds[f"{attempt.status} {shape}"] += 1
    return kinds


def outage_answers(
    records: list[DeliveryRecord], window: Window, *, expected: str, at_least: int = 1
) -> tuple[list[str], str]:
    """(problems, summary) of the answers given while a service was down; requests already in flight when it
    went down count too, and are shown apart. expected: "503" (with the JSON error body) or "2xx"; fewer
    than at_least answers means the outage missed the traffic.

    With "503", a request in flight when the database went down may also be answered 2xx: a 2xx is only ever
    given once its delivery is stored (the inbox row committed; `received` until it settles), and the cut may
    land after that — e.g. in the status query that confirms an STK, MTN or Airtel callback, which the immediate
    task backend runs inside the request and whose failure it does not pass on. The accounting then proves that
    such a delivery was not lost (the sweeper finishes it). A request that started during the outage must get
    the 503."""
    during = answers_in(records, window)
    in_flight = [(d, a) for d, a in during if a.started < window.started]
    summary = (
        f"answers during the {window.name} outage ({window.ended - window.started:.1f} s): "
        f"{dict(answer_kinds(during))}; of these, in flight when it went down: {dict(answer_kinds(in_flight))}"
    )
    problems = []
    if len(during) < at_least:
        problems.append(f"only {len(during)} answers during the {window.name} outage: the scenario proved nothing")
    if expected == "503":
        wrong = [
            (d, a)
            for d, a in during
            if not (a.status == 503 and a.has_error_shape) and not (a.ok and a.started < window.started)
        ]
    else:
        wrong = [(d, a) for d, a in during if not a.ok]
    if wrong:
        by_rail = sorted({d.label for d, _ in wrong})
        example = wrong[0][1].describe()
        problems.append(
            f"{len(wrong)} of {len(during)} answers during the {window.name} outage were not {expected} "
            f"(rails: {', '.join(by_rail)}); e.g. {example}"
        )
    return problems, summary


# --- the operator's commands and a whole rig ---------------------------------------------------------------


def manage(env: dict[str, str], *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "python"), "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def command_summary(result: subprocess.CompletedProcess[str]) -> str:
    lines = (result.stdout + result.stderr).strip().splitlines()
    tail = [line for line in lines if not line.startswith("  ")][-3:] or lines[-3:]
    return f"`{' '.join(result.args[1:])}` exit {result.returncode}: " + " | ".join(tail)[:600]


class FaultRig:
    """Fake providers, optionally a DB proxy and a private redis-server, and gunicorn, started in that
    order and stopped in reverse, whatever happens in between. `deliveries`: the seeded storm, so that the fake
    MTN and Airtel know the payments they were paid for."""

    def __init__(
        self,
        *,
        database: str,
        workdir: Path,
        secrets: Secrets,
        via_proxy: bool = False,
        with_redis: bool = False,
        workers: int = 3,
        deliveries: Iterable[Delivery] = (),
    ) -> None:
        self.deliveries = list(deliveries)  # what the fake MTN and Airtel must answer "paid" about
        self.database = database
        self.workdir = workdir
        self.log_dir = workdir / "logs"
        self.secrets = secrets
        self.via_proxy = via_proxy
        self.with_redis = with_redis
        self.workers = workers
        self.proxy: TcpProxy | None = None
        self.redis: RedisServer | None = None
        self._stack = ExitStack()

    def __enter__(self) -> FaultRig:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.providers = FakeProviders(self.deliveries).start()
            self._stack.callback(self.providers.stop)
            db_port = MARIADB_PORT
            if self.via_proxy:
                self.proxy = TcpProxy().start()
                self._stack.callback(self.proxy.close)
                db_port = self.proxy.port
            cache_url = ""
            if self.with_redis:
                self.redis = RedisServer(self.workdir).start()
                self._stack.callback(lambda: self.redis and self.redis.stop())
                cache_url = self.redis.url
            self.env = app_env(
                database_url=f"mysql://root@{HOST}:{db_port}/{self.database}",
                provider_url=self.providers.url,
                log_dir=self.log_dir,
                secrets=self.secrets,
                cache_url=cache_url,
            )
            self.gunicorn = Gunicorn(self.env, self.log_dir, workers=self.workers)
            self._stack.callback(self.gunicorn.stop)
            self.gunicorn.start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def storm(self, deliveries: Iterable[Delivery], **options: Any) -> StormDriver:
        return StormDriver(self.gunicorn.port, deliveries, **options)

    def recover(self) -> list[subprocess.CompletedProcess[str]]:
        """What an operator runs after an incident: reconcile twice."""
        return [manage(self.env, "reconcile_payments", "--older-than", "0s") for _ in range(2)]

    def verify_ledger(self) -> subprocess.CompletedProcess[str]:
        return manage(self.env, "verify_ledger")
