"""The month close of the fixture statement: exactly the planted findings, on SQLite and MariaDB (every test
here touches the database, so the MariaDB pass runs it too)."""

from datetime import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from finance.models import Discrepancy, Statement, StatementLine
from finance.parsers import StatementInvalid
from finance.services.close import close_month, month_bounds, report_csv
from finance.services.imports import statement_import
from finance.tests.conftest import GENERIC_STATEMENT, MPESA_STATEMENT
from finance.tests.ledger import LEDGER_ONLY, MISMATCHED, build_ledger
from payments.models import AuditEntry, Payment

pytestmark = pytest.mark.django_db
NOW = timezone.make_aware(datetime(2026, 12, 3, 9, 0))


def import_fixture(**kwargs):
    return statement_import(provider="mpesa", raw=MPESA_STATEMENT.read_bytes(), filename=MPESA_STATEMENT.name, **kwargs)


def test_the_fixture_statement_yields_exactly_the_planted_findings():
    build_ledger()
    result = import_fixture()
    assert (result.created, result.new_lines, result.duplicate_lines) == (True, 99, 1)

    report = close_month("mpesa", "2026-11", now=NOW)

    assert report.counts() == {
        "matched": 95,
        "mismatched": 1,
        "statement_only": 2,
        "ledger_only_expected": 0,
        "ledger_only": 1,
    }  # 93 donations + 2 payouts
    assert report.duplicate_lines == 1
    [mismatch] = report.of("mismatched")
    assert (mismatch.reference, mismatch.statement_amount, mismatch.ledger_amount) == (
        MISMATCHED,
        Decimal("370.00"),
        Decimal("270.00"),
    )
    assert sorted(f.reference for f in report.of("statement_only")) == ["TKX0000001", "TKX0000002"]
    assert [f.our_reference for f in report.of("ledger_only")] == ["RHCI-DN-LEDGER-ONLY"]
    kinds = sorted(Discrepancy.objects.values_list("kind", flat=True))
    assert kinds == ["ledger_only", "mismatch", "statement_only", "statement_only"]
    assert report.exceptions_open == 4 and report.exceptions_resolved == 0
    # Never silently credited: the two unknown payments are review items, the ledger is as it was.
    assert Payment.objects.filter(status=Payment.Status.SUCCEEDED).count() == 95
    assert not Payment.objects.filter(receipt__startswith="TKX").exists()


def test_importing_the_same_file_twice_changes_nothing():
    build_ledger()
    import_fixture()
    close_month("mpesa", "2026-11", now=NOW)
    before = (Statement.objects.count(), StatementLine.objects.count(), Discrepancy.objects.count())

    again = import_fixture()
    report = close_month("mpesa", "2026-11", now=NOW)

    assert again.created is False and again.new_lines == 0
    assert (Statement.objects.count(), StatementLine.objects.count(), Discrepancy.objects.count()) == before
    assert report.counts()["matched"] == 95 and report.exceptions_open == 4


def test_an_overlapping_file_adds_only_the_lines_not_seen_before():
    import_fixture()
    rows = MPESA_STATEMENT.read_text().splitlines()
    overlap = "\n".join([rows[0], *rows[-3:]]) + "\n"  # the last three rows again, a new one after them
    overlap += "TKA0009999,2026-11-30 20:00:00,2026-11-30 20:00:00,Pay Bill,Completed,150.00,,99794.00,,,,,\n"

    result = statement_import(provider="mpesa", raw=overlap.encode(), filename="overlap.csv")

    assert (result.created, result.new_lines, result.duplicate_lines) == (True, 1, 3)
    assert StatementLine.objects.count() == 100


def test_a_line_that_contradicts_an_imported_one_refuses_the_whole_file():
    import_fixture()
    rows = MPESA_STATEMENT.read_text().splitlines()
    changed = rows[1].replace(",Completed,110,", ",Completed,115,")
    fresh = "TKA0008888,2026-11-30 20:00:00,2026-11-30 20:00:00,Pay Bill,Completed,150.00,,1.00,,,,,"
    with pytest.raises(StatementInvalid, match="imported before") as refused:
        statement_import(provider="mpesa", raw="\n".join([rows[0], fresh, changed]).encode(), filename="x.csv")
    assert [n for n, _ in refused.value.problems] == [3]
    assert not StatementLine.objects.filter(provider_reference="TKA0008888").exists()  # nothing half-imported
    assert Statement.objects.count() == 1


def test_a_bad_line_imports_nothing_of_the_file():
    rows = MPESA_STATEMENT.read_text().splitlines()
    rows[50] = rows[50].replace("Completed,", "Completed,lots,", 1)
    with pytest.raises(StatementInvalid) as refused:
        statement_import(provider="mpesa", raw="\n".join(rows).encode(), filename="bad.csv")
    assert [n for n, _ in refused.value.problems] == [51]
    assert not Statement.objects.exists() and not StatementLine.objects.exists()


def test_the_fee_total_is_the_sum_of_the_line_fees_and_the_balance_equation_holds():
    build_ledger()
    statement = import_fixture().statement
    report = close_month("mpesa", "2026-11", now=NOW)

    lines = StatementLine.objects.filter(statement=statement)
    assert report.fees == sum(line.fee_total for line in lines) == Decimal("33.00")
    [proof] = report.proofs
    assert proof.opening + proof.credits - proof.debits - proof.fees == proof.closing == Decimal("99644.00")
    assert proof.holds is True
    assert not Discrepancy.objects.filter(kind=Discrepancy.Kind.BALANCE).exists()


def test_a_planted_balance_difference_is_an_exception_with_the_figures():
    statement = import_fixture(closing_balance=Decimal("99600.00")).statement
    report = close_month("mpesa", "2026-11", now=NOW)

    assert report.proofs[0].difference == Decimal("-44.00")
    exception = Discrepancy.objects.get(kind=Discrepancy.Kind.BALANCE)
    assert exception.statement == statement
    assert (exception.expected, exception.actual) == (Decimal("99644.00"), Decimal("99600.00"))
    assert "50000.00 + " in exception.detail and "difference -44.00" in exception.detail


@pytest.mark.parametrize("provider", ["mtn", "airtel", "azampay"])
def test_the_generic_statement_closes_for_each_provider(provider):
    statement_import(provider=provider, raw=GENERIC_STATEMENT.read_bytes(), filename=GENERIC_STATEMENT.name)
    report = close_month(provider, "2026-11", now=NOW)
    assert report.fees == Decimal("120.00")
    assert report.proofs[0].holds is True  # 1000 + 5000 − 500 − 120 = 5380
    assert report.counts()["statement_only"] == 3  # nothing of ours: review items, never credited


def test_a_ledger_movement_belongs_to_exactly_one_month():
    donation = build_ledger()["donation"]
    midnight = month_bounds("2026-12")[0]
    Payment.objects.create(
        donation=donation,
        reference="RHCI-DN-MIDNIGHT",
        provider="mpesa",
        amount=Decimal("5"),
        currency="KES",
        status=Payment.Status.SUCCEEDED,
        receipt="TKM0000001",
        completed_at=midnight,
    )
    import_fixture()

    november = close_month("mpesa", "2026-11", now=NOW)
    december = close_month("mpesa", "2026-12", now=NOW)

    refs = lambda report: {f.our_reference for f in report.findings}  # noqa: E731
    assert "RHCI-DN-MIDNIGHT" not in refs(november) and "RHCI-DN-MIDNIGHT" in refs(december)
    assert [f.kind for f in december.findings] == ["ledger_only_expected"]  # after the statement's end: expected


def test_a_ledger_only_payment_is_expected_within_the_grace_period(settings):
    build_ledger()
    import_fixture()
    late = Payment.objects.get(receipt="TKA0000094")  # the statement's last line; make ours unseen
    Payment.objects.filter(pk=late.pk).update(receipt="TKZ0000094", provider_reference="ws_CO_zz")
    settings.FINANCE_LEDGER_GRACE_HOURS = 48
    report = close_month("mpesa", "2026-11", now=NOW)
    assert [f.our_reference for f in report.of("ledger_only_expected")] == [late.reference]
    assert not Discrepancy.objects.filter(payment=late).exists()
    settings.FINANCE_LEDGER_GRACE_HOURS = 0
    report = close_month("mpesa", "2026-11", now=NOW)
    assert late.reference in [f.our_reference for f in report.of("ledger_only")]
    assert Discrepancy.objects.filter(payment=late, kind=Discrepancy.Kind.LEDGER_ONLY).exists()


def test_an_exception_the_ledger_no_longer_makes_is_cleared():
    build_ledger()
    import_fixture()
    close_month("mpesa", "2026-11", now=NOW)
    Payment.objects.filter(receipt=MISMATCHED).update(amount=Decimal("370.00"))  # corrected by a person
    close_month("mpesa", "2026-11", now=NOW)
    assert Discrepancy.objects.get(kind=Discrepancy.Kind.MISMATCH).status == Discrepancy.Status.CLEARED


def test_the_close_csv_lists_every_finding_and_the_totals():
    build_ledger()
    import_fixture()
    text = report_csv(close_month("mpesa", "2026-11", now=NOW))
    lines = text.splitlines()
    assert lines[0] == "section,reference,our_reference,statement_amount,ledger_amount,currency,detail"
    assert sum(1 for line in lines if line.startswith("matched,")) == 95
    assert f"mismatched,{MISMATCHED},RHCI-DN-17,370.00,270.00,KES" in text
    assert "total,fees,,33.00" in text and "total,exceptions open,,4" in text
    assert f"ledger_only,{LEDGER_ONLY}" in text


def test_an_import_is_audited():
    import_fixture()
    assert AuditEntry.objects.filter(action="statement.import").count() == 1


def test_a_provider_reference_that_looks_like_a_formula_is_made_safe_in_the_csv():
    raw = GENERIC_STATEMENT.read_bytes().replace(b"GEN-0001", b"=HYPERLINK(1)")
    statement_import(provider="mtn", raw=raw, filename="f.csv")
    text = report_csv(close_month("mtn", "2026-11", now=NOW))
    assert "statement_only,'=HYPERLINK(1)," in text
