"""Working an exception to an end: attach, hold, write off under maker-checker, every step audited."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from finance.models import BalanceQuery, Discrepancy
from finance.services.alerts import finance_alerts
from finance.services.balance import daraja_balance_result_record
from finance.services.close import close_month
from finance.services.exceptions import (
    ExceptionRefused,
    exception_approve_write_off,
    exception_attach,
    exception_hold,
    exception_reject_write_off,
    exception_request_write_off,
)
from finance.services.imports import statement_import
from finance.tests.conftest import MPESA_STATEMENT
from finance.tests.test_parsers import DARAJA_BALANCE
from payments.models import AuditEntry, Payment, PaymentHistory
from payments.services.watchdog import watchdog_alerts
from payments.tests.factories import PaymentFactory, staff_user

pytestmark = pytest.mark.django_db
WORKER = ("finance.work_discrepancy", "finance.view_discrepancy")
APPROVER = (*WORKER, "finance.approve_writeoff")


@pytest.fixture
def statement_only():
    statement_import(provider="mpesa", raw=MPESA_STATEMENT.read_bytes(), filename=MPESA_STATEMENT.name)
    close_month("mpesa", "2026-11")
    return Discrepancy.objects.get(kind=Discrepancy.Kind.STATEMENT_ONLY, line__provider_reference="TKX0000001")


def test_a_write_off_asked_by_one_person_needs_a_second_to_approve_and_both_are_audited(statement_only):
    maker = staff_user("maker", *APPROVER)  # even one holding the approve power cannot approve their own
    checker = staff_user("checker", *APPROVER)

    exception_request_write_off(statement_only.pk, actor=maker, reason="payer unknown after 3 calls")
    with pytest.raises(ExceptionRefused, match="different person"):
        exception_approve_write_off(statement_only.pk, actor=maker)
    assert Discrepancy.objects.get(pk=statement_only.pk).status == Discrepancy.Status.WRITE_OFF_REQUESTED

    done = exception_approve_write_off(statement_only.pk, actor=checker)

    assert (done.status, done.requested_by, done.approved_by) == (Discrepancy.Status.WRITTEN_OFF, maker, checker)
    assert done.resolved_at is not None and not done.is_open
    trail = list(
        AuditEntry.objects.filter(target=f"finance exception {done.pk}").order_by("id").values_list("actor", "action")
    )
    assert trail == [(maker.pk, "finance.writeoff.request"), (checker.pk, "finance.writeoff.approve")]


def test_approving_needs_the_approve_permission(statement_only):
    exception_request_write_off(statement_only.pk, actor=staff_user("maker", *WORKER), reason="unknown")
    with pytest.raises(ExceptionRefused, match="permission"):
        exception_approve_write_off(statement_only.pk, actor=staff_user("other", *WORKER))


def test_a_refused_write_off_is_open_again(statement_only):
    exception_request_write_off(statement_only.pk, actor=staff_user("maker", *WORKER), reason="unknown")
    exception_reject_write_off(statement_only.pk, actor=staff_user("checker", *APPROVER), reason="call again")
    assert Discrepancy.objects.get(pk=statement_only.pk).status == Discrepancy.Status.OPEN


def test_a_write_off_needs_a_reason(statement_only):
    with pytest.raises(ExceptionRefused, match="reason"):
        exception_request_write_off(statement_only.pk, actor=staff_user("maker", *WORKER), reason="  ")


def test_attaching_links_the_line_to_a_payment_without_crediting_anything(statement_only):
    payment = PaymentFactory(provider="mpesa", status=Payment.Status.FAILED)
    worker = staff_user("worker", *WORKER)

    done = exception_attach(statement_only.pk, payment=payment, actor=worker, reason="donor called: wrong account")

    assert (done.status, done.payment) == (Discrepancy.Status.ATTACHED, payment)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.FAILED  # the ledger is not credited from a statement line
    assert PaymentHistory.objects.filter(payment=payment, cause="finance.attach").exists()
    assert AuditEntry.objects.filter(action="finance.exception.attach", actor=worker).exists()
    with pytest.raises(ExceptionRefused, match="attached"):
        exception_hold(statement_only.pk, actor=worker, reason="again")


def test_a_payment_of_another_provider_cannot_be_attached(statement_only):
    with pytest.raises(ExceptionRefused, match="azampay"):
        exception_attach(
            statement_only.pk,
            payment=PaymentFactory(provider="azampay"),
            actor=staff_user("worker", *WORKER),
            reason="x",
        )


def test_the_watchdog_alerts_on_exceptions_open_longer_than_the_setting(statement_only, settings):
    settings.FINANCE_EXCEPTION_ALERT_DAYS = 7
    now = timezone.now()
    assert not [a for a in watchdog_alerts() if "month-close" in a]
    Discrepancy.objects.filter(pk=statement_only.pk).update(found_at=now - timedelta(days=8))
    assert [a for a in watchdog_alerts() if "month-close" in a] == [
        "1 month-close exception(s) open for more than 7 day(s) (the admin's Finance → Exceptions: attach, hold "
        "or write off)"
    ]
    exception_hold(statement_only.pk, actor=staff_user("w", *WORKER), reason="looking")
    assert finance_alerts(now=now)  # held is still open: it must end somewhere


def test_a_balance_result_that_never_arrives_is_alerted_not_waited_on(settings):
    settings.FINANCE_BALANCE_RESULT_TIMEOUT_MINUTES = 30
    query = BalanceQuery.objects.create(provider="mpesa", conversation_id="AG_20261130_0001")
    now = timezone.now()
    assert finance_alerts(now=now) == []
    later = now + timedelta(minutes=31)
    assert finance_alerts(now=later) == [
        "mpesa: 1 wallet balance query(ies) without a result after 30 minutes (the provider does not retry: read "
        "the balance in its portal, or ask again with balance_query)"
    ]
    daraja_balance_result_record(conversation_id=query.conversation_id, result_code="0", value=DARAJA_BALANCE)
    assert finance_alerts(now=later) == []
    query.refresh_from_db()
    assert query.accounts["Utility Account"]["available"] == "228037.00"


def test_a_month_exception_count_reaches_the_dashboard(statement_only, client):
    client.force_login(staff_user("finance", "payments.view_payment", *WORKER))
    page = client.get("/admin/").content.decode()
    assert "Month-close exceptions open" in page
    assert "/admin/finance/discrepancy/?status__in=open,held,write_off_requested" in page


def test_found_at_is_kept_when_the_close_runs_again(statement_only):
    old = timezone.make_aware(datetime(2026, 12, 1))
    Discrepancy.objects.filter(pk=statement_only.pk).update(found_at=old)
    close_month("mpesa", "2026-11")
    assert Discrepancy.objects.get(pk=statement_only.pk).found_at == old
