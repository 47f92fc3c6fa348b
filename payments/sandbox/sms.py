"""Simulated Africa's Talking SMS API (/africastalking/version1/messaging) and what it received
(GET /_sandbox/sms/messages: a JSON list, newest last, each with `to` in international form and `message`).

Answers in Africa's Talking's shapes (docs/providers/africastalking.md): 201 with SMSMessageData.Recipients on a
send, a plain-text 401 without the apiKey header, a plain-text 400 for a missing field. Scripted numbers: one
ending in 406 answers statusCode 406 UserInBlacklist (and is not listed as received), one ending in 403
InvalidPhoneNumber.
"""

import logging
import re
import threading
import uuid
from typing import Any

from payments.sandbox.base import Route, SandboxContext, Simulator, mask_msisdn
from payments.sandbox.protocol import BadRequestBody, SandboxRequest, SandboxResponse, json_response, text_response
from payments.sandbox.store import iso, utc_now

logger = logging.getLogger("payments.sandbox.sms")

PREFIX = "/africastalking"
INSPECTION = "/_sandbox/sms"
COST = "TZS 20.0000"
SCRIPTED = {"406": "UserInBlacklist", "403": "InvalidPhoneNumber"}


class AfricasTalkingSmsSimulator(Simulator):
    name = "africastalking-sms"

    def __init__(self, context: SandboxContext) -> None:
        super().__init__(context)
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []

    def routes(self) -> dict[str, Route]:
        return {PREFIX: self.handle, INSPECTION: self.inspect}

    def inspect(self, request: SandboxRequest, subpath: str) -> SandboxResponse:
        path = subpath.rstrip("/") or "/"
        if path == "/messages" and request.method == "GET":
            with self._lock:
                return json_response(200, list(self._messages))
        if path == "/reset" and request.method == "POST":
            with self._lock:
                self._messages.clear()
            return json_response(200, {"ok": True})
        return json_response(404, {"error": f"No sandbox endpoint {INSPECTION}{subpath}"})

    def handle(self, request: SandboxRequest, subpath: str) -> SandboxResponse:
        if subpath.rstrip("/") != "/version1/messaging":
            return text_response(404, "Not Found")
        if request.method != "POST":
            return text_response(405, "Method Not Allowed")
        if not request.header("apikey"):
            return text_response(401, "The supplied authentication is invalid")
        try:
            form = request.form()
        except BadRequestBody:
            return text_response(400, "Request is missing required form field 'to'")
        for field in ("username", "to", "message"):
            if not str(form.get(field, "")).strip():
                return text_response(400, f"Request is missing required form field '{field}'")
        recipients = []
        for raw in str(form["to"]).split(","):
            number = raw.strip()
            digits = re.sub(r"\D", "", number)
            if not number.startswith("+") or not 8 <= len(digits) <= 15:
                recipients.append(_recipient(number, 403, "InvalidPhoneNumber", ""))
                continue
            scripted = next((word for end, word in SCRIPTED.items() if digits.endswith(end)), None)
            if scripted:
                code = 406 if scripted == "UserInBlacklist" else 403
                recipients.append(_recipient(number, code, scripted, ""))
                continue
            message_id = f"ATXid_{uuid.uuid4().hex}"
            with self._lock:
                self._messages.append(
                    {
                        "id": message_id,
                        "to": f"+{digits}",
                        "message": form["message"],
                        "from": form.get("from", ""),
                        "username": form["username"],
                        "received_at": iso(utc_now()),
                    }
                )
            logger.info("SMS sandbox message %s to %s", message_id, mask_msisdn(digits))
            recipients.append(_recipient(f"+{digits}", 101, "Success", message_id))
        sent = sum(1 for r in recipients if r["statusCode"] == 101)
        body = {
            "SMSMessageData": {
                "Message": f"Sent to {sent}/{len(recipients)} Total Cost: {COST if sent else 'TZS 0'}",
                "Recipients": recipients,
            }
        }
        return json_response(201, body)


def _recipient(number: str, code: int, status: str, message_id: str) -> dict[str, Any]:
    return {
        "statusCode": code,
        "number": number,
        "status": status,
        "cost": COST if code == 101 else "0",
        "messageId": message_id or "None",
    }
