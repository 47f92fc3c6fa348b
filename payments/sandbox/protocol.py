"""Request and response values passed between the HTTP server and the simulators.

Simulators are plain functions of a `SandboxRequest`, so they can be tested without sockets and the server
stays one small piece of code shared by every provider.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs


class BadRequestBody(ValueError):
    """The body is not the JSON or form the endpoint expects."""


@dataclass(frozen=True)
class SandboxRequest:
    method: str
    path: str  # without the query string
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    host: str = ""  # the Host header, to build absolute URLs pointing back at the sandbox

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    @property
    def content_type(self) -> str:
        return self.header("content-type").split(";")[0].strip().lower()

    def json(self) -> Any:
        """The body as JSON; BadRequestBody when it is not (the caller answers 400, never 500)."""
        if not self.body.strip():
            raise BadRequestBody("The request body is empty.")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequestBody(f"The request body is not valid JSON: {exc}") from exc

    def form(self) -> dict[str, str]:
        """Query string plus a urlencoded or multipart body, the ways Telegram's API accepts parameters."""
        values = dict(self.query)
        if self.content_type == "application/x-www-form-urlencoded":
            try:
                text = self.body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadRequestBody("The form body is not UTF-8.") from exc
            values.update({k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()})
        elif self.content_type == "multipart/form-data":
            values.update(_multipart(self.header("content-type"), self.body))
        return values


def _multipart(content_type: str, body: bytes) -> dict[str, str]:
    # The stdlib email parser reads multipart/form-data well enough for a simulator (cgi is gone in 3.13).
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise BadRequestBody("The multipart body could not be read.")
    values: dict[str, str] = {}
    for part in message.iter_parts():
        if not isinstance(part, Message):
            continue
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            payload = part.get_payload(decode=True) or b""
            values[name] = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else str(payload)
    return values


@dataclass
class SandboxResponse:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(
    status: int, payload: Any, *, content_type: str = "application/json; charset=utf-8"
) -> SandboxResponse:
    return SandboxResponse(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"), content_type)


def text_response(status: int, text: str) -> SandboxResponse:
    return SandboxResponse(status, text.encode("utf-8"), "text/plain; charset=utf-8")


def html_response(status: int, html: str) -> SandboxResponse:
    return SandboxResponse(status, html.encode("utf-8"), "text/html; charset=utf-8")


def redirect_response(location: str, status: int = 303) -> SandboxResponse:
    return SandboxResponse(status, b"", "text/plain; charset=utf-8", {"Location": location})


def error_json(status: int, message: str) -> SandboxResponse:
    """The sandbox's own error body (its inspection endpoints and unknown paths)."""
    titles = {
        400: "Bad Request",
        404: "Not Found",
        405: "Method Not Allowed",
        413: "Payload Too Large",
        500: "Internal Server Error",
    }
    return json_response(status, {"error": titles.get(status, "Error"), "message": message, "status": status})
