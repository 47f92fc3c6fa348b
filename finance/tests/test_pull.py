"""Daraja's Pull Transactions imported as a statement: offset pages until `[[]]`, each receipt once, amounts as
Decimal from the bytes; pulling an overlapping window again changes nothing. The far side is `responses` with
the shapes of docs/providers/mpesa.md ("Pull Transactions")."""

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from finance.models import Statement, StatementLine
from finance.services.pull import statement_pull, statement_pull_register
from payments.tests.mpesa_fakes import API, C2B_SHORTCODE, fixture

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("mpesa_settings")]
QUERY_URL = f"{API}/pulltransactions/v1/query"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def pages(daraja, *answers):
    """Daraja's answers in order, one per query; the bodies the site sent are returned."""
    sent = []
    queue = list(answers)

    def answer(request):
        sent.append(json.loads(request.body))
        return 200, {}, json.dumps(queue.pop(0) if queue else fixture("pull_query_none.json"))

    daraja.add_callback("POST", QUERY_URL, callback=answer)
    return sent


def test_pages_are_read_until_the_empty_answer_and_imported_as_one_statement(daraja):
    sent = pages(daraja, fixture("pull_query_page.json"))
    result = statement_pull(provider="mpesa", now=NOW)
    assert [b["OffSetValue"] for b in sent] == ["0", "2"]
    assert sent[0] == {
        "ShortCode": C2B_SHORTCODE,
        "StartDate": "2026-11-28 15:00:00",  # 48 hours back, in Nairobi time
        "EndDate": "2026-11-30 15:00:00",
        "OffSetValue": "0",
    }
    assert (result.pulled, result.new_lines, result.complete) == (2, 2, True)
    statement = Statement.objects.get()
    assert (statement.source, statement.credits, statement.currency) == ("pull", Decimal("1733.80"), "KES")
    line = StatementLine.objects.get(provider_reference="LHG31AA5TX")
    assert (line.kind, line.amount, line.account) == ("credit", Decimal("233.80"), "RHCI-DN-7")
    assert line.occurred_at == datetime(2026, 11, 30, 10, 13, tzinfo=UTC)


def test_pulling_an_overlapping_window_again_changes_nothing(daraja):
    pages(daraja, fixture("pull_query_page.json"), fixture("pull_query_none.json"), fixture("pull_query_page.json"))
    statement_pull(provider="mpesa", now=NOW)
    again = statement_pull(provider="mpesa", now=NOW.replace(hour=13))
    assert (again.pulled, again.new_lines, again.statement) == (2, 0, None)
    assert Statement.objects.count() == 1 and StatementLine.objects.count() == 2


def test_only_the_new_lines_of_an_overlapping_pull_are_imported(daraja):
    first = fixture("pull_query_page.json")
    later = fixture("pull_query_page.json")
    later["Response"][0].append({**later["Response"][0][0], "transactionId": "LHG31AA5TZ", "amount": 50})
    pages(daraja, first, fixture("pull_query_none.json"), later)
    statement_pull(provider="mpesa", now=NOW)
    again = statement_pull(provider="mpesa", now=NOW)
    assert (again.pulled, again.new_lines) == (3, 1)
    assert StatementLine.objects.count() == 3
    assert Statement.objects.order_by("pk").last().credits == Decimal("50.00")


def test_an_empty_window_imports_nothing(daraja):
    pages(daraja)
    result = statement_pull(provider="mpesa", now=NOW)
    assert (result.pulled, result.statement) == (0, None)
    assert not Statement.objects.exists()


def test_a_refused_pull_is_a_clear_command_error(daraja):
    daraja.post(QUERY_URL, status=400, json={"errorCode": "400.001", "errorMessage": "Invalid ShortCode"})
    with pytest.raises(CommandError, match="mpesa: M-Pesa: Invalid ShortCode"):
        call_command("statement_pull", "--provider", "mpesa")
    assert not Statement.objects.exists()


def test_the_registration_names_our_shortcode_number_and_notice_url(daraja, settings):
    settings.PAYMENT_PROVIDERS["mpesa"]["pull_nominated_number"] = "254722000000"
    daraja.post(f"{API}/pulltransactions/v1/register", json=fixture("pull_register_success.json"))
    assert statement_pull_register(provider="mpesa") == "Shortcode Registered Successfully"
    body = json.loads(daraja.calls[-1].request.body)
    assert body == {
        "ShortCode": C2B_SHORTCODE,
        "RequestType": "Pull",
        "NominatedNumber": "254722000000",
        "CallBackURL": "https://donate.example.org/webhooks/mpesa/pull/notice/",
    }


def test_the_command_wants_a_provider_that_pulls():
    with pytest.raises(CommandError, match="pulling is offered by mpesa"):
        call_command("statement_pull", "--provider", "mtn")


def test_a_pulled_statement_covers_payments_but_never_payouts(daraja):
    from finance.services.close import close_month
    from finance.tests.ledger import build_ledger

    build_ledger()  # payments through November, two payouts (12th and 20th), no statement file
    pages(daraja, fixture("pull_query_page.json"))
    statement_pull(provider="mpesa", now=NOW)
    report = close_month("mpesa", "2026-11")
    payouts = [f for f in report.findings if f.our_reference.startswith("RHCI-PO-")]
    assert {f.kind for f in payouts} == {"ledger_only_expected"}  # money out is on no pull: not yet missing
    early = next(f for f in report.findings if f.our_reference == "RHCI-DN-1")
    assert early.kind == "ledger_only"  # a payment older than the grace before the pull's end, on no line
    assert {f.reference for f in report.of("statement_only")} == {"LHG31AA5TX", "LHG31AA5TY"}
