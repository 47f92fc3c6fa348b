"""SMS gateways behind one small interface: send a text to one number, and read a delivery report.

A gateway only translates and does HTTP; what to send, to whom and how often is donor/sms.py's. Adding one
(Beem for Tanzania, docs/providers/africastalking.md) means a class with `send` and `parse_delivery_report`, a
name in GATEWAYS and its settings; nothing else changes.

Facts about Africa's Talking relied on here are in docs/providers/africastalking.md, with their sources.
"""

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import requests
from django.conf import settings

from donor.phone_numbers import mask_msisdn

logger = logging.getLogger("payments.sms")


class SmsStatus(StrEnum):
    """Our words for where a message is; each gateway maps its own onto them."""

    SENT = "sent"  # the gateway took it (delivery not known yet)
    DELIVERED = "delivered"  # reached the handset (final)
    FAILED = "failed"  # not delivered (final); `retry` on SmsSent says whether sending again may help
    UNKNOWN = "unknown"  # the request left us and no answer came: it may have been sent


@dataclass(frozen=True)
class SmsSent:
    """What a gateway answered to one send."""

    status: SmsStatus
    message_id: str = ""
    error: str = ""
    retry: bool = False  # a failure that may pass (gateway down, out of credit): the outbox tries again
    opted_out: bool = False  # the number refuses our messages: never send to it again


@dataclass(frozen=True)
class DeliveryReport:
    message_id: str
    status: SmsStatus
    reason: str = ""
    opted_out: bool = False
    msisdn: str = ""  # E.164 digits without "+", when the report names the number


class SmsGateway(Protocol):
    name: str

    def send(self, *, msisdn: str, text: str, idempotency_key: str) -> SmsSent:
        """Send `text` to `msisdn` (E.164 digits, no "+"). Never raises for a gateway's or network's failure."""
        ...

    def parse_delivery_report(self, data: dict[str, str]) -> DeliveryReport | None:
        """The report in a delivery-report POST (form fields), or None when it is not one."""
        ...


# Africa's Talking's per-recipient statusCode on a send: 100 Processed, 101 Sent, 102 Queued are accepted;
# the rest refuse that recipient. Of those, these may pass with time (its side, our credit).
AT_ACCEPTED = {100, 101, 102}
AT_RETRYABLE = {401, 405, 500, 501, 502}  # RiskHold, InsufficientBalance, InternalServerError, Gateway errors
AT_OPTED_OUT_CODES = {406, 409}  # UserInBlacklist, DoNotDisturbRejection
# Delivery-report failureReason values that mean the subscriber refuses messages from us.
AT_OPTED_OUT_REASONS = {"userinblacklist", "userinblacklisted", "userisblacklisted", "donotdisturbrejection"}
AT_FINAL_FAILED = {"failed", "rejected"}
AT_IN_FLIGHT = {"sent", "submitted", "buffered"}


class AfricasTalkingGateway:
    """Africa's Talking's plain HTTP API: POST {api_url}/version1/messaging, form-encoded, apiKey header."""

    name = "africastalking"

    def __init__(self, *, username: str, api_key: str, api_url: str, sender_id: str = "", timeout: float = 15.0):
        self.username = username
        self.api_key = api_key
        self.api_url = api_url.rstrip("/")
        self.sender_id = sender_id
        self.timeout = timeout

    def send(self, *, msisdn: str, text: str, idempotency_key: str) -> SmsSent:
        form = {"username": self.username, "to": f"+{msisdn}", "message": text}
        if self.sender_id:
            form["from"] = self.sender_id
        # Africa's Talking documents its Idempotence-Key for airtime and payments only; sent anyway (harmless),
        # but our once-only guard is the outbox row, never this header.
        headers = {"apiKey": self.api_key, "Accept": "application/json", "Idempotence-Key": idempotency_key[:64]}
        try:
            response = requests.post(
                f"{self.api_url}/version1/messaging", data=form, headers=headers, timeout=(5, self.timeout)
            )
        except requests.ConnectionError as exc:  # never reached it (refused, DNS, connect timeout): safe to retry
            return SmsSent(SmsStatus.FAILED, error=f"Africa's Talking unreachable: {type(exc).__name__}", retry=True)
        except requests.Timeout:  # it may have sent it: not sent again (a second SMS is worse than none)
            return SmsSent(SmsStatus.UNKNOWN, error="Africa's Talking did not answer in time")
        if response.status_code >= 500:
            return SmsSent(SmsStatus.FAILED, error=f"Africa's Talking HTTP {response.status_code}", retry=True)
        try:
            data = response.json()
            recipient = data["SMSMessageData"]["Recipients"][0]
            code = int(recipient.get("statusCode", 0))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            # 401 (bad apiKey) and other refusals come as plain text: an operator's fix, retried meanwhile.
            text_answer = response.text[:120].replace("\n", " ")
            return SmsSent(SmsStatus.FAILED, error=f"Africa's Talking HTTP {response.status_code}: {text_answer}",
                           retry=True)  # fmt: skip
        status_word = str(recipient.get("status", ""))
        if code in AT_ACCEPTED:
            return SmsSent(SmsStatus.SENT, message_id=str(recipient.get("messageId", "")))
        return SmsSent(
            SmsStatus.FAILED,
            message_id=str(recipient.get("messageId", "") if recipient.get("messageId") != "None" else ""),
            error=f"Africa's Talking {code} {status_word}".strip(),
            retry=code in AT_RETRYABLE,
            opted_out=code in AT_OPTED_OUT_CODES,
        )

    def parse_delivery_report(self, data: dict[str, str]) -> DeliveryReport | None:
        message_id = str(data.get("id", "")).strip()
        status_word = str(data.get("status", "")).strip()
        if not message_id or not status_word:
            return None
        reason = str(data.get("failureReason", "")).strip()
        word = status_word.lower()
        if word == "success":
            status = SmsStatus.DELIVERED
        elif word in AT_FINAL_FAILED:
            status = SmsStatus.FAILED
        elif word in AT_IN_FLIGHT:
            status = SmsStatus.SENT
        else:
            return None
        phone = "".join(c for c in str(data.get("phoneNumber", "")) if c.isdigit())
        return DeliveryReport(
            message_id=message_id[:100],
            status=status,
            reason=(f"{status_word}: {reason}" if reason else status_word)[:120],
            opted_out=reason.lower() in AT_OPTED_OUT_REASONS,
            msisdn=phone[:15],
        )


GATEWAYS = ("africastalking", "none")


def sms_gateway() -> SmsGateway | None:
    """The configured gateway, or None when SMS is off (SMS_GATEWAY=none)."""
    if settings.SMS_GATEWAY == "africastalking":
        return AfricasTalkingGateway(
            username=settings.AFRICASTALKING_USERNAME,
            api_key=settings.AFRICASTALKING_API_KEY,
            api_url=settings.AFRICASTALKING_API_URL,
            sender_id=settings.AFRICASTALKING_SENDER_ID,
        )
    return None


def sms_enabled() -> bool:
    return settings.SMS_GATEWAY != "none"


def log_sent(gateway: str, msisdn: str, sent: SmsSent) -> None:
    """One log line per send, the number masked."""
    level = logging.INFO if sent.status == SmsStatus.SENT else logging.WARNING
    logger.log(level, "SMS by %s to %s: %s %s %s", gateway, mask_msisdn(msisdn), sent.status, sent.message_id,
               sent.error)  # fmt: skip


# --- Text that fits one SMS --------------------------------------------------------------------------------

# The GSM 03.38 default alphabet (one septet each) and its extension table (two: escape + character).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")
SMS_MAX_SEPTETS = 160
_PLAIN: dict[str, str | int | None] = {"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-", "…": "..."}
PLAIN = str.maketrans(_PLAIN)


def gsm7_clean(text: str) -> str:
    """The text in the GSM-7 alphabet: typographic quotes and dashes made plain, anything else dropped to "?"
    (one character outside it would make the whole message UCS-2, 70 characters a part)."""
    plain = text.translate(PLAIN)
    return "".join(c if c in GSM7_BASIC or c in GSM7_EXTENDED else "?" for c in plain)


def gsm7_length(text: str) -> int:
    """Septets `text` takes in GSM-7 (extension characters count two)."""
    return sum(2 if c in GSM7_EXTENDED else 1 for c in text)


def fit_sms(*variants: str) -> str:
    """The first (longest, fullest) variant that fits one GSM-7 SMS; the last one cut to fit otherwise."""
    cleaned = [gsm7_clean(v) for v in variants]
    for text in cleaned:
        if gsm7_length(text) <= SMS_MAX_SEPTETS:
            return text
    text = cleaned[-1]
    while gsm7_length(text) > SMS_MAX_SEPTETS:
        text = text[:-1]
    return text
