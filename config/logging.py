"""Logging: the settings' LOGGING dictionary (three rotating files and an optional console), and the filter that
keeps phone numbers and secrets out of every log file and every record on one line."""

import logging
import re
from pathlib import Path

# 9-15 digit runs that stand alone (not inside a reference like RHCI-DN-12-20251219120000).
PHONE_RE = re.compile(r"(?<![\w\-.])\+?(\d{9,15})(?![\w\-.])")
SECRET_RE = re.compile(
    r"""(?P<key>["']?(?:password|passkey|client_?secret|clientSecret|secret|token|access_?token|accessToken|"""
    r"""api_?key|SecurityCredential|Password)["']?\s*[:=]\s*["']?)(?P<value>[^"',\s}]+)""",
    re.IGNORECASE,
)
# Telegram's bot token sits in its URL path (/bot<token>/sendMessage): urllib3 logs that line at DEBUG.
TELEGRAM_TOKEN_RE = re.compile(r"(/bot)\d+:[A-Za-z0-9_-]+")
BEARER_RE = re.compile(r"(Bearer|Basic)\s+[A-Za-z0-9._~+/=\-]+")
# The secret segment of a callback URL (/webhooks/mpesa/stkpush/<token>/, /webhooks/paybill/confirmation/<token>/):
# it is what authenticates a paybill credit or a payout result, so it must never reach a log file (Django's
# request logger writes the path of every 4xx).
WEBHOOK_TOKEN_RE = re.compile(
    r"(/webhooks/(?:[A-Za-z0-9_-]+/){0,3}?"
    r"(?:stkpush|stk|validation|confirmation|result|timeout|collection|disbursement|remittance|refund)/)"
    r"([^/\s?#\"']+)"
)

# A donation's public token in a path (/donations/<token>/, /api/v1.0/donors/donations/<token>/status/): it is the
# donor's link, so it must not reach a log file either (Django's request logger writes the path of every 4xx).
DONATION_TOKEN_RE = re.compile(r"(/donations/)[A-Za-z0-9_-]{32}(?![A-Za-z0-9_-])")

# Characters that end or rewrite a line (\n, \r, the other C0 and C1 controls, DEL, Unicode's line and
# paragraph separators): request data carrying one could forge a log line of its own ("… pending -> succeeded").
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_controls(text: str) -> str:
    """Control characters as visible escapes (\\n, \\r, \\t, \\x1b, \\u2028): one record stays one line."""
    if not CONTROL_RE.search(text):
        return text
    return CONTROL_RE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match[0]
    return _NAMED_ESCAPES.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def mask_phone(digits: str) -> str:
    """2557****678: enough to tell two donors apart in a log, not enough to call them."""
    digits = digits.lstrip("+")
    if len(digits) < 8:
        return "****"
    return f"{digits[:4]}****{digits[-3:]}"


def mask_text(text: str) -> str:
    text = WEBHOOK_TOKEN_RE.sub(lambda m: f"{m.group(1)}***", text)
    text = DONATION_TOKEN_RE.sub(lambda m: f"{m.group(1)}***", text)
    text = TELEGRAM_TOKEN_RE.sub(lambda m: f"{m.group(1)}***", text)
    text = SECRET_RE.sub(lambda m: f"{m.group('key')}***", text)
    text = BEARER_RE.sub(lambda m: f"{m.group(1)} ***", text)
    return PHONE_RE.sub(lambda m: mask_phone(m.group(1)), text)


class MaskSensitiveFilter(logging.Filter):
    """On every handler (config/settings.py LOGGING): the rendered message masked, and escaped so that no value
    from a request (a callback field, a header, a path) can start a line of its own. Tracebacks keep their lines:
    they are ours, and a reader knows where one starts and ends."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            return True
        masked = escape_controls(mask_text(message))
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            # A traceback can quote a URL or a body: format it here so that it is masked like the message.
            record.exc_text = mask_text(_FORMATTER.formatException(record.exc_info))
        return True


_FORMATTER = logging.Formatter()


def _rotating(log_dir: Path, filename: str, level: str = "DEBUG") -> dict:
    return {
        "class": "logging.handlers.RotatingFileHandler",
        "filename": str(log_dir / filename),
        "maxBytes": 10 * 1024 * 1024,
        "backupCount": 10,
        "formatter": "standard",
        "filters": ["mask_sensitive"],
        "level": level,
        "encoding": "utf-8",
    }


def logging_config(*, log_dir: Path, level: str, console: bool) -> dict:
    """payments.log (the money's story, grepped by operators), django.log and errors.log, each rotated at 10 MB."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"mask_sensitive": {"()": "config.logging.MaskSensitiveFilter"}},
        "formatters": {"standard": {"format": "%(asctime)s - %(name)s - %(levelname)s - %(message)s"}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "standard", "filters": ["mask_sensitive"]},
            "payments_file": _rotating(log_dir, "payments.log"),
            "django_file": _rotating(log_dir, "django.log", "INFO"),
            "errors_file": _rotating(log_dir, "errors.log", "ERROR"),
        },
        # The console copy is for development; under gunicorn in production the files are the record (and a
        # third handler per line is measurable on the callback path: bench/README.md).
        "root": {"handlers": [*(["console"] if console else []), "django_file", "errors_file"], "level": level},
        "loggers": {
            "payments": {"handlers": ["payments_file"], "level": level, "propagate": True},
            "django.db.backends": {"level": "INFO"},
            # An over-limit body is logged once, as a warning, by config.middleware.payload_too_large; Django's own
            # line for it is an error with a traceback.
            "django.security.RequestDataTooBig": {"level": "CRITICAL"},
        },
    }
