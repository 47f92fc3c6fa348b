"""No log record carries raw control characters from request data: a callback field with a newline in it cannot
write a line of its own (a fake "Payment … pending -> succeeded") into the log files. Read from the files the
project's own handlers write (config/settings.py LOGGING), through the real callback URL."""

import json
import logging
import uuid

import pytest
from django.conf import settings
from django.test import Client

from config.logging import MaskSensitiveFilter
from config.tests.log_files import log_files
from payments.tests.azampay_fakes import CALLBACK_URL, PASSWORD, fixture

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("azampay_settings")]


def log_lines() -> list[str]:
    for handler in logging.getLogger().handlers + logging.getLogger("payments").handlers:
        handler.flush()
    return [line for p in log_files() for line in p.read_text(errors="replace").splitlines()]


BREAKERS = {
    "lf": ("\n", "\\n"),
    "crlf": ("\r\n", "\\r\\n"),
    "cr": ("\r", "\\r"),
    "ls": ("\u2028", "\\u2028"),
    "nel": ("\x85", "\\x85"),
}


@pytest.mark.parametrize(("breaker", "escaped"), list(BREAKERS.values()), ids=list(BREAKERS))
def test_a_newline_in_a_callback_field_cannot_forge_a_log_line(breaker, escaped):
    marker = uuid.uuid4().hex[:12]
    fake = f"2026-12-01 10:00:00,000 - payments - INFO - Payment RHCI-DN-{marker} pending -> succeeded"
    body = fixture("callback_real_sandbox.json")
    body.update(utilityref=f"RHCI-DN-404-{marker}{breaker}{fake}", password=PASSWORD)

    response = Client().post(CALLBACK_URL, data=json.dumps(body).encode(), content_type="application/json")

    assert response.status_code == 404  # names no payment of ours: logged with the reference it gave
    lines = [line for line in log_lines() if marker in line]
    assert lines, "the callback's warning was not written"
    assert not any(line.startswith("2026-12-01 10:00:00,000") for line in lines)
    assert all("Payment RHCI-DN-" not in line or "names an unknown payment" in line for line in lines)
    assert any(escaped + "2026-12-01" in line for line in lines)  # shown, escaped


def test_every_handler_of_the_project_escapes_control_characters():
    """The guarantee holds for each handler LOGGING defines, so a handler added later without the filter fails."""
    for name, handler in settings.LOGGING["handlers"].items():
        assert "mask_sensitive" in handler.get("filters", []), name
    assert settings.LOGGING["filters"]["mask_sensitive"]["()"] == "config.logging.MaskSensitiveFilter"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("a\nb", "a\\nb"),
        ("a\r\nb", "a\\r\\nb"),
        ("tab\there", "tab\\there"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("nul\x00", "nul\\x00"),
        ("del\x7f", "del\\x7f"),
        ("ls\u2028ps\u2029", "ls\\u2028ps\\u2029"),
        ("Habari, Amani — é ñ 日本", "Habari, Amani — é ñ 日本"),  # printable text is left alone
    ],
)
def test_control_characters_in_any_argument_are_escaped_by_the_filter(raw, shown):
    record = logging.LogRecord("payments", logging.WARNING, __file__, 1, "ref %s", (raw,), None)
    assert MaskSensitiveFilter().filter(record)
    assert record.getMessage() == f"ref {shown}"
