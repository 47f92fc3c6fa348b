"""The fault harness's processes: gunicorn, a private redis-server, a TCP proxy that can cut MariaDB, the provider
sandbox (`manage.py sandbox` on a free port) and the operator's manage.py commands.

Everything listens on 127.0.0.1 only, on a port picked free at start; every process is started in its own session
by the object that owns it and stopped by that object (never by name).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
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
        self.process = terminate(self.process, grace=15)

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


class Sandbox:
    """`manage.py sandbox --port <free>`: the real provider simulators, answering the site's token requests and
    status queries. It learns the payments the storm seeded straight into the database (POST /_sandbox/learn),
    since it never saw them being charged."""

    def __init__(self, env: dict[str, str], log_dir: Path, *, callback_url: str) -> None:
        self.env = env
        self.log_path = log_dir / "sandbox.log"
        self.callback_url = callback_url
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, ready_timeout: float = 60.0) -> Sandbox:
        command = [str(BIN / "python"), "manage.py", "sandbox", "--port", str(self.port)]
        command += ["--callback-url", self.callback_url]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        if not wait_until(self.ready, timeout=ready_timeout, interval=0.2):
            self.stop()
            raise RuntimeError(f"the sandbox did not start; log: {self.log_path}")
        return self

    def ready(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"the sandbox exited; log: {self.log_path}")
        return self.request("GET", "/_sandbox/transactions")[0] == 200

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        try:
            connection = http.client.HTTPConnection(HOST, self.port, timeout=10)
            data = json.dumps(body).encode() if body is not None else None
            connection.request(method, path, body=data, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"null")
        except (OSError, ValueError):
            return 0, None

    def learn(self, charges: list[dict[str, str]]) -> None:
        if not charges:
            return
        status, answer = self.request("POST", "/_sandbox/learn", {"charges": charges})
        if status != 200:
            raise RuntimeError(f"the sandbox refused to learn the seeded payments: {status} {answer}")

    def stop(self) -> None:
        self.process = terminate(self.process, grace=10)


def terminate(process: subprocess.Popen[bytes] | None, *, grace: float) -> None:
    """SIGTERM a process we started, then SIGKILL its whole session if it is still there after `grace` seconds."""
    if process is None or process.poll() is not None:
        return None
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
    return None


def manage(env: dict[str, str], *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "python"), "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def command_summary(result: subprocess.CompletedProcess[str]) -> str:
    lines = (result.stdout + result.stderr).strip().splitlines()
    tail = [line for line in lines if not line.startswith("  ")][-3:] or lines[-3:]
    return f"`{' '.join(result.args[1:])}` exit {result.returncode}: " + " | ".join(tail)[:600]
