"""The sandbox's HTTP server: one threaded stdlib server, routing by URL prefix to the simulators.

Deliberately not Django: the simulators play *other* companies' servers, so they share nothing with the
site (no middleware, no database), and a test can start one in a thread in a few milliseconds.
"""

import logging
import re
import socketserver
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from payments.sandbox.airtel import AirtelSimulator
from payments.sandbox.azampay import AzamPaySimulator, default_callback_url
from payments.sandbox.base import DEFAULT_TOKEN_LIFETIME_SECONDS, Route, SandboxContext, Simulator
from payments.sandbox.daraja import DarajaSimulator
from payments.sandbox.dispatch import CallbackDispatcher
from payments.sandbox.learn import learned_charges
from payments.sandbox.mtn import MtnSimulator
from payments.sandbox.protocol import (
    BadRequestBody,
    SandboxRequest,
    SandboxResponse,
    error_json,
    json_response,
)
from payments.sandbox.sms import AfricasTalkingSmsSimulator
from payments.sandbox.store import SandboxStore
from payments.sandbox.telegram import TelegramSimulator

logger = logging.getLogger("payments.sandbox")

# The explicit registry: one simulator class per provider (AzamPay, Daraja, MTN, Airtel), and Telegram's.
SIMULATOR_CLASSES: tuple[type[Simulator], ...] = (
    AzamPaySimulator,
    DarajaSimulator,
    MtnSimulator,
    AirtelSimulator,
    TelegramSimulator,
    AfricasTalkingSmsSimulator,  # SMS: /africastalking, and what it received at /_sandbox/sms/messages
)
INSPECTION_PREFIX = "/_sandbox"
MAX_BODY_BYTES = 1024 * 1024
BOT_TOKEN_IN_PATH = re.compile(r"/bot[^/\s]+/")


class InspectionSimulator(Simulator):
    """The sandbox's own endpoints for tests and demos: what was charged, delivered and sent."""

    name = "inspection"

    def routes(self) -> dict[str, Route]:
        return {INSPECTION_PREFIX: self.handle}

    def handle(self, request: SandboxRequest, subpath: str) -> SandboxResponse:
        path = subpath.rstrip("/") or "/"
        if path == "/transactions" and request.method == "GET":
            return json_response(
                200,
                self.store.charges_json(
                    provider=request.query.get("provider", ""), external_id=request.query.get("externalId", "")
                ),
            )
        if path == "/telegram/messages" and request.method == "GET":
            return json_response(200, self.store.messages_json())
        if path == "/learn" and request.method == "POST":
            try:
                charges = learned_charges(request.json())
            except BadRequestBody as exc:
                return error_json(400, str(exc))
            for charge in charges:
                self.store.add_charge(charge)
            return json_response(200, {"ok": True, "learnt": len(charges)})
        if path == "/reset" and request.method == "POST":
            self.store.reset()
            return json_response(200, {"ok": True, "message": "Sandbox store cleared."})
        if path in ("/transactions", "/telegram/messages", "/reset", "/learn"):
            return error_json(405, f"{request.method} is not allowed on {INSPECTION_PREFIX}{path}")
        return error_json(404, f"No sandbox endpoint {INSPECTION_PREFIX}{subpath}")


class Router:
    def __init__(self, simulators: list[Simulator]) -> None:
        self.simulators = simulators
        routes: dict[str, Route] = {}
        for simulator in simulators:
            for prefix, route in simulator.routes().items():
                if prefix in routes:
                    raise ValueError(f"Two simulators claim the prefix {prefix}")
                routes[prefix] = route
        # Longest prefix first, and only on a segment boundary, so /azampay-auth never falls into /azampay.
        self.routes = sorted(routes.items(), key=lambda item: len(item[0]), reverse=True)

    def dispatch(self, request: SandboxRequest) -> SandboxResponse:
        if request.path in ("", "/"):
            return json_response(
                200,
                {
                    "sandbox": "payment provider simulators",
                    "simulators": [s.describe() for s in self.simulators],
                    "inspection": [
                        f"GET {INSPECTION_PREFIX}/transactions",
                        f"GET {INSPECTION_PREFIX}/telegram/messages",
                        f"POST {INSPECTION_PREFIX}/reset",
                    ],
                },
            )
        for prefix, route in self.routes:
            if request.path == prefix or request.path.startswith(prefix + "/"):
                try:
                    return route(request, request.path[len(prefix) :] or "/")
                except BadRequestBody as exc:  # a simulator that did not answer it in its provider's words
                    return error_json(400, str(exc))
        return error_json(404, f"No sandbox route for {request.path}")


class SandboxRequestHandler(BaseHTTPRequestHandler):
    server: "SandboxServer"
    server_version = "PaymentsSandbox/1.0"

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _handle(self) -> None:
        try:
            response = self._respond()
        except Exception:  # one bad request must never take the server down
            logger.error(
                "Sandbox handler crashed on %s %s\n%s", self.command, self._safe_path(), traceback.format_exc()
            )
            response = error_json(500, "The sandbox failed on this request; see its log.")
        self._write(response)

    def _respond(self) -> SandboxResponse:
        length_header = self.headers.get("Content-Length") or "0"
        try:
            length = int(length_header)
        except ValueError:
            return error_json(400, "Content-Length is not a number.")
        if length < 0 or length > MAX_BODY_BYTES:
            return error_json(413, f"Request bodies are limited to {MAX_BODY_BYTES} bytes.")
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = SandboxRequest(
            method=self.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            host=self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2]),
        )
        return self.server.router.dispatch(request)

    def _write(self, response: SandboxResponse) -> None:
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away; nothing to answer

    def _safe_path(self) -> str:
        return BOT_TOKEN_IN_PATH.sub("/bot***/", getattr(self, "path", ""))

    def log_message(self, format: str, *args: Any) -> None:
        # Into logging (not stderr), with Telegram bot tokens masked out of the request line.
        logger.info("sandbox %s", BOT_TOKEN_IN_PATH.sub("/bot***/", format % args))


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], context: SandboxContext, simulators: list[Simulator]) -> None:
        super().__init__(address, SandboxRequestHandler)
        self.context = context
        self.simulators = {s.name: s for s in simulators}
        self.router = Router(simulators)

    @property
    def store(self) -> SandboxStore:
        return self.context.store

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"

    def close(self) -> None:
        """Stop callback delivery and release the socket (for a server whose serve_forever has returned)."""
        self.context.dispatcher.stop()
        self.server_close()

    def shutdown(self) -> None:
        """Stop serve_forever (running in another thread), then everything else."""
        super().shutdown()
        self.close()


def build_sandbox(
    host: str = "127.0.0.1",
    port: int = 8001,
    callback_url: str | None = None,
    time_scale: float = 1.0,
    *,
    token_lifetime: int = DEFAULT_TOKEN_LIFETIME_SECONDS,
) -> SandboxServer:
    """A bound but not yet serving sandbox. `port=0` picks a free port (see `server.base_url`)."""
    if time_scale < 0:
        raise ValueError("time_scale must not be negative")
    store = SandboxStore()
    dispatcher = CallbackDispatcher(store, time_scale=time_scale)
    context = SandboxContext(
        store=store,
        dispatcher=dispatcher,
        callback_url=callback_url or default_callback_url(),
        time_scale=time_scale,
        token_lifetime=token_lifetime,
    )
    simulators: list[Simulator] = [cls(context) for cls in SIMULATOR_CLASSES]
    simulators.append(InspectionSimulator(context))
    try:
        return SandboxServer((host, port), context, simulators)
    except OSError:
        dispatcher.stop()
        raise


def run_sandbox(
    host: str = "127.0.0.1",
    port: int = 0,
    callback_url: str | None = None,
    time_scale: float = 1.0,
    *,
    token_lifetime: int = DEFAULT_TOKEN_LIFETIME_SECONDS,
) -> SandboxServer:
    """Start a sandbox serving in a daemon thread; call `server.shutdown()` to stop it (tests, scripts)."""
    server = build_sandbox(host, port, callback_url, time_scale, token_lifetime=token_lifetime)
    serve_in_thread(server)
    return server


def serve_in_thread(server: socketserver.BaseServer, name: str = "sandbox-http") -> threading.Thread:
    """Serve `server` from a daemon thread. `shutdown()` waits for the serving loop to look at its flag, which it
    does once per poll interval: the standard 0.5 s made every test that starts a server half a second slower."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, name=name, daemon=True)
    thread.start()
    return thread
