"""The statement and balance parsers (pure: no database)."""

from decimal import Decimal

import pytest

from finance.balances import BalanceUnreadable, parse_daraja_balance
from finance.parsers import PARSERS, StatementInvalid, parse_generic, parse_mpesa_org
from finance.tests.conftest import GENERIC_STATEMENT, MPESA_STATEMENT

HEADER = "occurred_at,provider_reference,kind,amount,fee,currency,account,counterparty\n"


def test_the_mpesa_org_statement_reads_into_lines_with_its_balances():
    parsed = parse_mpesa_org(MPESA_STATEMENT.read_bytes())
    assert len(parsed.lines) == 100  # 94 donations + 1 repeated + 2 unknown, 2 payouts, 1 charge
    kinds = [line.kind for line in parsed.lines]
    assert kinds.count("credit") == 97 and kinds.count("debit") == 2 and kinds.count("fee") == 1
    fee = next(line for line in parsed.lines if line.kind == "fee")
    assert (fee.provider_reference, fee.amount, fee.fee_total) == ("TKC0000001", Decimal("33.00"), Decimal("33.00"))
    debit = next(line for line in parsed.lines if line.provider_reference == "TKB0000001")
    assert debit.amount == Decimal("3000.00")  # the minus of Withdrawn is the direction, not the amount
    assert parsed.opening_balance == Decimal("50000.00") and parsed.closing_balance == Decimal("99644.00")
    assert parsed.currency == "KES"
    assert all(isinstance(line.amount, Decimal) for line in parsed.lines)


def test_the_generic_csv_reads_its_header_lines_and_fees():
    parsed = parse_generic(GENERIC_STATEMENT.read_bytes())
    assert [line.provider_reference for line in parsed.lines] == ["GEN-0001", "GEN-0002", "GEN-0003", "GEN-FEE-11"]
    assert (parsed.opening_balance, parsed.closing_balance, parsed.currency) == (
        Decimal("1000.00"),
        Decimal("5380.00"),
        "UGX",
    )
    assert sum(line.fee_total for line in parsed.lines) == Decimal("120.00")
    assert parsed.lines[1].occurred_at.utcoffset().total_seconds() == 3 * 3600


@pytest.mark.parametrize("provider", sorted(PARSERS))
def test_every_provider_reads_the_generic_csv(provider):
    assert len(PARSERS[provider](GENERIC_STATEMENT.read_bytes()).lines) == 4


def test_malformed_lines_are_named_by_line_number_and_the_file_refused():
    raw = (
        "# currency: KES\n"
        + HEADER
        + "2026-11-02T09:00:00,A1,credit,100.00,,KES,,\n"
        + "yesterday,A2,credit,100.00,,KES,,\n"
        + "2026-11-02T09:00:00,A3,refund,100.00,,KES,,\n"
        + "2026-11-02T09:00:00,A4,credit,1e3,,KES,,\n"
        + "2026-11-02T09:00:00,A5,credit,10.001,,KES,,\n"
        + "2026-11-02T09:00:00,A6,credit,-5,,KES,,\n"
        + "2026-11-02T09:00:00,,credit,5,,KES,,\n"
        + "2026-11-02T09:00:00,A8,credit,5,,KES,,,extra\n"
    ).encode()
    with pytest.raises(StatementInvalid) as refused:
        parse_generic(raw)
    assert [n for n, _text in refused.value.problems] == [4, 5, 7, 8, 9, 10]  # 1e3 is 1000.00: a valid amount
    texts = dict(refused.value.problems)
    assert "not a date" in texts[4] and "kind" in texts[5] and "2 decimal" in texts[7] and "negative" in texts[8]


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"a,b,c\n1,2,3\n", "lacks the column"),
        (HEADER.encode(), "no statement lines"),
        (
            (HEADER + "2026-11-02T09:00:00,A1,credit,1,,KES,,\n2026-11-02T09:00:00,A2,credit,1,,TZS,,\n").encode(),
            "one currency",
        ),
    ],
)
def test_unreadable_files_are_refused_whole(raw, says):
    with pytest.raises(StatementInvalid, match=says):
        parse_generic(raw)


def test_a_file_that_is_no_mpesa_statement_says_so():
    with pytest.raises(StatementInvalid, match="not an M-Pesa organisation statement"):
        parse_mpesa_org(b"Date,Amount\n2026-11-01,5\n")


DARAJA_BALANCE = (
    "Working Account|KES|700000.00|700000.00|0.00|0.00&Float Account|KES|0.00|0.00|0.00|0.00&Utility Account|KES|"
    "228037.00|228037.00|0.00|0.00&Charges Paid Account|KES|-1540.00|-1540.00|0.00|0.00&Organization Settlement "
    "Account|KES|0.00|0.00|0.00|0.00"
)


def test_the_daraja_account_balance_string_parses_into_accounts_with_decimals():
    accounts = parse_daraja_balance(DARAJA_BALANCE)
    assert list(accounts) == [
        "Working Account",
        "Float Account",
        "Utility Account",
        "Charges Paid Account",
        "Organization Settlement Account",
    ]
    utility = accounts["Utility Account"]
    assert (utility.currency, utility.available, utility.uncleared) == (
        "KES",
        Decimal("228037.00"),
        Decimal("228037.00"),
    )
    assert accounts["Charges Paid Account"].available == Decimal("-1540.00")
    assert all(isinstance(a.available, Decimal) for a in accounts.values())


def test_a_short_daraja_account_reads_missing_figures_as_zero():
    assert parse_daraja_balance("Utility Account|KES|15.50").popitem()[1].reserved == Decimal("0.00")


@pytest.mark.parametrize(
    "text",
    ["", "Working Account|KES|abc", "Working Account|K1|5", "|KES|5", "Utility Account|KES|1&Utility Account|KES|2"],
)
def test_an_unreadable_daraja_balance_is_refused(text):
    with pytest.raises(BalanceUnreadable):
        parse_daraja_balance(text)
