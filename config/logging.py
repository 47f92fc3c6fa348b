"""Log filter that keeps phone numbers and secrets out of every log file."""

import logging
import re

# 9-15 digit runs that stand alone (not inside a reference like RHCI-DN-12-20251219120000).
PHONE_RE = re.compile(r"(?<![\w\-.])\+?(\d{9,15})(?![\w\-.])")
SECRET_RE = re.compile(
    r"""(?P<key>["']?(?:password|passkey|client_?secret|clientSecret|secret|token|access_?token|accessToken|"""
    r"""api_?key|SecurityCredential|Password)["']?\s*[:=]\s*["']?)(?P<value>[^"',\s}]+)""",
    re.IGNORECASE,
)
BEARER_RE = re.compile(r"(Bearer|Basic)\s+[A-Za-z0-9._~+/=\-]+")


def mask_phone(digits: str) -> str:
    """2557****678: enough to tell two donors apart in a log, not enough to call them."""
    digits = digits.lstrip("+")
    if len(digits) < 8:
        return "****"
    return f"{digits[:4]}****{digits[-3:]}"


def mask_text(text: str) -> str:
    text = SECRET_RE.sub(lambda m: f"{m.group('key')}***", text)
    text = BEARER_RE.sub(lambda m: f"{m.group(1)} ***", text)
    return PHONE_RE.sub(lambda m: mask_phone(m.group(1)), text)


class MaskSensitiveFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            return True
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
