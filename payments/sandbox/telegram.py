"""Simulated Telegram Bot API (/telegram/bot<token>/<method>): enough for alerts to be "sent" and inspected.

Answers use the Bot API's envelope ({"ok": true, "result": …} / {"ok": false, "error_code", "description"})
and its wording for the mistakes an alerting client can make, so those surface locally, not in production.
"""

import logging
import re
import time
from typing import Any

from payments.sandbox.base import Route, Simulator
from payments.sandbox.protocol import BadRequestBody, SandboxRequest, SandboxResponse, json_response
from payments.sandbox.store import iso, utc_now

logger = logging.getLogger("payments.sandbox.telegram")

PREFIX = "/telegram"
BOT = {"id": 1, "is_bot": True, "username": "sandbox_bot", "first_name": "Sandbox"}
PARSE_MODES = ("HTML", "Markdown", "MarkdownV2")
MAX_TEXT_CHARS = 4096
METHOD_RE = re.compile(r"/bot(?P<token>[^/]+)/(?P<method>[A-Za-z]+)/?")


def _error(status: int, description: str) -> SandboxResponse:
    return json_response(status, {"ok": False, "error_code": status, "description": description})


class TelegramSimulator(Simulator):
    name = "telegram"

    def routes(self) -> dict[str, Route]:
        return {PREFIX: self.handle}

    def handle(self, request: SandboxRequest, subpath: str) -> SandboxResponse:
        found = METHOD_RE.fullmatch(subpath)
        if found is None or request.method not in ("GET", "POST"):
            return _error(404, "Not Found")
        method = found["method"].lower()  # Bot API method names are case-insensitive
        if method == "getme":
            return json_response(200, {"ok": True, "result": BOT})
        if method == "sendmessage":
            return self.send_message(request, found["token"])
        return _error(404, "Not Found")

    def send_message(self, request: SandboxRequest, token: str) -> SandboxResponse:
        try:
            params = _params(request)
        except BadRequestBody:
            return _error(400, "Bad Request: can't parse request body")
        chat_id = params.get("chat_id")
        text = params.get("text")
        # The real API's wording: a missing chat_id is reported as such, not as an empty text.
        if chat_id is None or str(chat_id).strip() == "":
            return _error(400, "Bad Request: chat_id is empty")
        if not isinstance(text, str) or not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT_CHARS:
            return _error(400, "Bad Request: message is too long")
        parse_mode = params.get("parse_mode") or ""
        if parse_mode and parse_mode not in PARSE_MODES:
            return _error(400, "Bad Request: unsupported parse_mode")
        chat = _chat(chat_id)
        sent_at = int(time.time())
        message = self.store.add_message(
            {
                "bot_id": token.split(":", 1)[0],  # never the secret half of the token
                "chat_id": chat["id"],
                "text": text,
                "parse_mode": parse_mode,
                "date": sent_at,
                "received_at": iso(utc_now()),
                "params": {k: v for k, v in params.items() if k not in ("chat_id", "text", "parse_mode")},
            }
        )
        logger.info("Telegram sandbox message %s to chat %s", message["message_id"], chat["id"])
        return json_response(
            200,
            {
                "ok": True,
                "result": {
                    "message_id": message["message_id"],
                    "from": BOT,
                    "chat": chat,
                    "date": sent_at,
                    "text": text,
                },
            },
        )


def _params(request: SandboxRequest) -> dict[str, Any]:
    # The Bot API takes parameters as JSON, a form, multipart or the query string.
    if request.content_type == "application/json":
        data = request.json()
        if not isinstance(data, dict):
            raise BadRequestBody("The JSON body must be an object.")
        return {**request.query, **data}
    return request.form()


def _chat(chat_id: Any) -> dict[str, Any]:
    value = str(chat_id).strip()
    if re.fullmatch(r"-?\d+", value):
        number = int(value)
        return {"id": number, "type": "private" if number > 0 else "supergroup"}
    return {"id": value, "type": "channel"}
