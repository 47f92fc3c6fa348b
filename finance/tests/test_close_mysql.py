"""Two imports of one statement at the same instant on MariaDB: one stores it, the other changes nothing; two
closes at once record each exception once. Skipped on SQLite (conftest)."""

import pytest

from finance.models import Discrepancy, Statement, StatementLine
from finance.services.close import close_month
from finance.services.imports import statement_import
from finance.tests.conftest import MPESA_STATEMENT
from finance.tests.ledger import build_ledger
from payments.tests.helpers import run_together

pytestmark = [pytest.mark.mysql, pytest.mark.django_db(transaction=True)]


def test_the_same_file_imported_twice_at_once_is_stored_once():
    raw = MPESA_STATEMENT.read_bytes()
    results = run_together([lambda: statement_import(provider="mpesa", raw=raw, filename="a.csv")] * 2)
    assert sorted(r.created for r in results) == [False, True]
    assert Statement.objects.count() == 1 and StatementLine.objects.count() == 99


def test_two_closes_at_once_record_each_exception_once():
    build_ledger()
    statement_import(provider="mpesa", raw=MPESA_STATEMENT.read_bytes(), filename="a.csv")
    run_together([lambda: close_month("mpesa", "2026-11")] * 2)
    assert Discrepancy.objects.count() == 4
