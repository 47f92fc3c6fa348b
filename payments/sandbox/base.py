"""What a simulator is: a named set of URL prefixes, each answered by a plain function of the request.

Adding a provider (Daraja under /daraja, MTN under /mtn, Airtel under /airtel) means one module with one
`Simulator` subclass and one entry in `payments.sandbox.server.SIMULATOR_CLASSES`.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from payments.sandbox.dispatch import CallbackDispatcher
from payments.sandbox.protocol import SandboxRequest, SandboxResponse
from payments.sandbox.store import SandboxStore

Route = Callable[[SandboxRequest, str], SandboxResponse]  # (request, path below the prefix) → response

DEFAULT_TOKEN_LIFETIME_SECONDS = 3600


@dataclass(frozen=True)
class SandboxContext:
    store: SandboxStore
    dispatcher: CallbackDispatcher
    # Where providers without a per-request callback URL (AzamPay: one URL per app, set on the dashboard)
    # deliver; providers that are told a URL per request (Daraja, MTN) use that one instead.
    callback_url: str
    time_scale: float = 1.0
    token_lifetime: int = DEFAULT_TOKEN_LIFETIME_SECONDS  # seconds of real time; not scaled


class Simulator:
    name: str = ""

    def __init__(self, context: SandboxContext) -> None:
        self.context = context
        self.store = context.store
        self.dispatcher = context.dispatcher

    def routes(self) -> dict[str, Route]:
        """URL prefix (e.g. "/azampay") → handler."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """A short summary for the sandbox's index page."""
        return {"name": self.name, "prefixes": sorted(self.routes())}


def match(pattern: str, path: str) -> re.Match[str] | None:
    """Full-match a route pattern, tolerating a trailing slash the way the real gateways do."""
    return re.fullmatch(pattern + "/?", path)


def mask_msisdn(msisdn: str) -> str:
    """2557****678: logs never show whole phone numbers."""
    return f"{msisdn[:4]}****{msisdn[-3:]}" if len(msisdn) > 7 else "****"


Handler = Callable[[SandboxRequest, re.Match[str]], SandboxResponse]
Endpoint = tuple[frozenset[str], str, Handler]  # (methods, path pattern below the prefix, handler)


def endpoint(methods: str, pattern: str, handler: Handler) -> Endpoint:
    return frozenset(methods.split(",")), pattern, handler


def dispatch_table(
    request: SandboxRequest,
    subpath: str,
    table: list[Endpoint],
    *,
    not_found: Callable[[], SandboxResponse],
    method_not_allowed: Callable[[], SandboxResponse],
) -> SandboxResponse:
    """First endpoint whose pattern matches; 405 when only the method is wrong, so a GET/POST mix-up is obvious."""
    path_matched = False
    for methods, pattern, handler in table:
        found = match(pattern, subpath)
        if found is None:
            continue
        path_matched = True
        if request.method in methods:
            return handler(request, found)
    return method_not_allowed() if path_matched else not_found()
