"""The sandbox's statement: a full close with nothing to find, and each planted anomaly caught."""

from datetime import datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from finance.services.close import close_month
from finance.services.imports import statement_import
from finance.tests.ledger import build_ledger

pytestmark = pytest.mark.django_db
NOW = timezone.make_aware(datetime(2026, 12, 20))


def export(plant: str) -> bytes:
    out = StringIO()
    call_command("statement_export_sandbox", "--provider", "mpesa", "--month", "2026-11", "--plant", plant, stdout=out)
    return out.getvalue().encode()


@pytest.mark.parametrize(
    ("plant", "found"),
    [
        ("none", {}),
        ("unknown-credit", {"statement_only": 1}),
        ("amount", {"mismatched": 1}),
        ("missing", {"ledger_only": 1}),
        ("balance", {"balance": 1}),
    ],
)
def test_the_sandbox_statement_closes_and_each_plant_is_caught(settings, plant, found):
    settings.PAYMENTS_SANDBOX_URL = "http://127.0.0.1:9"
    build_ledger()
    statement_import(provider="mpesa", raw=export(plant), filename="sandbox.csv")
    report = close_month("mpesa", "2026-11", now=NOW)
    counts = {k: v for k, v in report.counts().items() if v and k != "matched"}
    if any(p.holds is False for p in report.proofs):
        counts["balance"] = 1
    assert counts == found
    assert report.counts()["matched"] >= 95


def test_the_sandbox_export_refuses_without_the_sandbox(settings):
    settings.PAYMENTS_SANDBOX_URL = ""
    with pytest.raises(CommandError, match="Only against the sandbox"):
        call_command("statement_export_sandbox", "--provider", "mpesa", "--month", "2026-11", stdout=StringIO())
