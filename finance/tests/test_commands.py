"""statement_import and month_close: the happy path and every bad input a clear CommandError."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from finance.models import Discrepancy, Statement, StatementLine
from finance.tests.conftest import GENERIC_STATEMENT, MPESA_STATEMENT
from finance.tests.ledger import build_ledger

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_import_then_close_prints_the_report_and_the_csv():
    build_ledger()
    first = run("statement_import", "--provider", "mpesa", str(MPESA_STATEMENT))
    assert "99 new line(s), 1 already known" in first and "fees 33.00" in first
    assert "nothing changed" in run("statement_import", "--provider", "mpesa", str(MPESA_STATEMENT))
    text = run("month_close", "--provider", "mpesa", "--month", "2026-11")
    assert "matched                              95" in text and "exceptions open                      4" in text
    assert "50000.00 + " in text and "the statement's closing is 99644.00" in text
    csv_text = run("month_close", "--provider", "mpesa", "--month", "2026-11", "--format", "csv")
    assert csv_text.startswith("section,reference,") and "statement_only,TKX0000001" in csv_text
    assert Discrepancy.objects.count() == 4


def test_balances_given_on_the_command_line_are_proven(tmp_path):
    plain = tmp_path / "s.csv"
    plain.write_text("\n".join(line for line in GENERIC_STATEMENT.read_text().splitlines() if not line.startswith("#")))
    run("statement_import", "--provider", "mtn", str(plain), "--opening", "1000.00", "--closing", "5300")
    assert "difference -80.00" in run("month_close", "--provider", "mtn", "--month", "2026-11")
    assert Discrepancy.objects.filter(kind=Discrepancy.Kind.BALANCE).count() == 1


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["statement_import", "--provider", "paypal", "x.csv"], "--provider 'paypal': one of airtel, azampay"),
        (["statement_import", "--provider", "mpesa", "/nonexistent/statement.csv"], "cannot read it"),
        (["statement_import", "--provider", "mpesa", str(MPESA_STATEMENT), "--opening", "lots"], "not an amount"),
        (["month_close", "--provider", "mpesa", "--month", "2026-13"], "--month: month '2026-13': use YYYY-MM"),
        (["month_close", "--provider", "mpesa", "--month", "11/2026"], "use YYYY-MM"),
        (["month_close", "--provider", "mtnn", "--month", "2026-11"], "--provider 'mtnn'"),
        (["month_close", "--provider", "mtn", "--month", "2026-11", "--format", "pdf"], "text or csv"),
    ],
)
def test_bad_input_is_a_clear_command_error(args, says):
    with pytest.raises(CommandError) as refused:
        call_command(*args, stdout=StringIO())
    assert says in str(refused.value)


def test_an_unreadable_file_is_a_command_error_with_line_numbers(tmp_path):
    bad = tmp_path / "bad.csv"
    rows = GENERIC_STATEMENT.read_text().splitlines()
    rows[6] = rows[6].replace("credit", "gift")
    bad.write_text("\n".join(rows))
    with pytest.raises(CommandError, match=r"nothing imported, 1 problem\(s\):\nline 7: kind 'gift'"):
        call_command("statement_import", "--provider", "airtel", str(bad), stdout=StringIO())
    binary = tmp_path / "statement.xlsx"
    binary.write_bytes(b"PK\x03\x04\x00\x00\xff\xfe")
    with pytest.raises(CommandError, match="not UTF-8 text"):
        call_command("statement_import", "--provider", "airtel", str(binary), stdout=StringIO())
    assert not Statement.objects.exists() and not StatementLine.objects.exists()
