"""The month close in the admin: upload (form errors, never a traceback), the report page, an exception's page
and its actions under maker-checker."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from config.tests.helpers import login_with_second_factor
from finance.models import Discrepancy, Statement
from finance.services.close import close_month
from finance.services.imports import statement_import
from finance.tests.conftest import MPESA_STATEMENT
from finance.tests.ledger import build_ledger
from payments.models import AuditEntry
from payments.tests.factories import staff_user

pytestmark = pytest.mark.django_db
WORKER = (
    "finance.work_discrepancy",
    "finance.view_discrepancy",
    "finance.add_statement",
    "finance.view_statement",
    "finance.view_statementline",
    "payments.view_payment",
)


@pytest.fixture
def worker(client):
    client.force_login(staff_user("worker", *WORKER))
    return client


def upload(client, name: str, content: bytes, provider: str = "mpesa"):
    return client.post(
        "/admin/finance/statement/add/", {"provider": provider, "file": SimpleUploadedFile(name, content, "text/csv")}
    )


def test_an_upload_imports_the_statement_once(worker):
    response = upload(worker, MPESA_STATEMENT.name, MPESA_STATEMENT.read_bytes())
    statement = Statement.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/finance/statement/{statement.pk}/change/")
    again = upload(worker, MPESA_STATEMENT.name, MPESA_STATEMENT.read_bytes())
    assert again.status_code == 302 and Statement.objects.count() == 1
    assert worker.get(again["Location"]).status_code == 200


@pytest.mark.parametrize(
    ("content", "provider", "says"),
    [
        (b"\xff\xfe\x00\x01", "mpesa", "not UTF-8 text"),
        (b"Receipt No.,Completion Time\nA,2026-11-01\n", "mpesa", "not an M-Pesa organisation statement"),
        (
            b"occurred_at,provider_reference,kind,amount,fee,currency,account,counterparty\n"
            b"2026-11-01T10:00:00,R1,credit,ten,,UGX,,\n",
            "mtn",
            "line 2: amount &#x27;ten&#x27; is not an amount",
        ),
        (b"x", "paypal", "Select a valid choice"),
    ],
)
def test_a_bad_upload_is_a_form_error(worker, content, provider, says):
    response = upload(worker, "s.csv", content, provider)
    assert response.status_code == 200
    assert says in response.content.decode()
    assert not Statement.objects.exists()


def test_the_month_close_page_shows_the_report_and_downloads_the_csv(worker):
    build_ledger()
    statement_import(provider="mpesa", raw=MPESA_STATEMENT.read_bytes(), filename=MPESA_STATEMENT.name)
    page = worker.get("/admin/finance/statement/month-close/", {"provider": "mpesa", "month": "2026-11"})
    text = page.content.decode()
    assert page.status_code == 200 and "TKX0000002" in text and "the statement&#x27;s closing is 99644.00" in text
    csv = worker.get(
        "/admin/finance/statement/month-close/", {"provider": "mpesa", "month": "2026-11", "format": "csv"}
    )
    assert csv["Content-Type"].startswith("text/csv") and b"total,fees,,33.00" in csv.content
    bad = worker.get("/admin/finance/statement/month-close/", {"provider": "mpesa", "month": "2026-1"})
    assert bad.status_code == 200 and "use YYYY-MM" in bad.content.decode()


def test_an_exception_page_shows_both_sides_and_links_the_payment(worker):
    build_ledger()
    statement_import(provider="mpesa", raw=MPESA_STATEMENT.read_bytes(), filename=MPESA_STATEMENT.name)
    close_month("mpesa", "2026-11")
    mismatch = Discrepancy.objects.get(kind=Discrepancy.Kind.MISMATCH)
    text = worker.get(f"/admin/finance/discrepancy/{mismatch.pk}/change/").content.decode()
    assert "credit 370.00 KES TKA0000017" in text
    assert f"/admin/payments/payment/{mismatch.payment_id}/change/" in text and "RHCI-DN-17" in text


def test_a_write_off_in_the_admin_takes_two_people(client, django_user_model):
    statement_import(provider="mpesa", raw=MPESA_STATEMENT.read_bytes(), filename=MPESA_STATEMENT.name)
    close_month("mpesa", "2026-11")
    exception = Discrepancy.objects.filter(kind=Discrepancy.Kind.STATEMENT_ONLY).first()
    url = f"/admin/finance/discrepancy/{exception.pk}/change/"
    maker = staff_user("maker", *WORKER)
    client.force_login(maker)
    client.post(url, {"action": "request_write_off", "reason": "no such payer"})
    refused = client.post(url, {"action": "approve_write_off"})
    assert "You may not do this here." in refused.content.decode()

    checker = staff_user("checker", *WORKER, "finance.approve_writeoff")
    login_with_second_factor(client, checker)
    assert client.post(url, {"action": "approve_write_off"}).status_code == 302

    exception.refresh_from_db()
    assert (exception.status, exception.requested_by, exception.approved_by) == ("written_off", maker, checker)
    assert set(AuditEntry.objects.values_list("action", "actor")) >= {
        ("finance.writeoff.request", maker.pk),
        ("finance.writeoff.approve", checker.pk),
    }


def test_a_write_off_approver_needs_a_second_factor_for_the_admin(client):
    client.force_login(staff_user("checker", *WORKER, "finance.approve_writeoff"))
    response = client.get("/admin/finance/discrepancy/")
    assert response.status_code == 302 and "/login/" in response["Location"]
