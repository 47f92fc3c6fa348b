"""Refunds under concurrency on a real MariaDB/MySQL: approvals racing each other send once; requests racing
each other make one refund; the ledger is reversed once. Skipped on SQLite (conftest)."""

from decimal import Decimal

import pytest
import responses

from donor.models import Allocation
from patients.tests.factories import PatientFactory
from payments.models import Refund
from payments.services.refunds import RefundRefused, refund_approve, refund_request
from payments.tests.factories import staff_user
from payments.tests.helpers import run_together
from payments.tests.mpesa_fakes import API, TOKEN_URL
from payments.tests.services.test_refunds import CHECKER, MAKER, paid_donation

pytestmark = [pytest.mark.mysql, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("mpesa_settings")]
CHECKERS = 5


def attempt(call):
    def run():
        try:
            return call()
        except RefundRefused as refused:
            return refused.message

    return run


def test_five_checkers_approving_at_once_send_the_reversal_once():
    patient = PatientFactory(currency="KES", funding_goal=Decimal("100000"))
    donation = paid_donation(patient)
    maker = staff_user("maker", *MAKER)
    checkers = [staff_user(f"checker{i}", *CHECKER) for i in range(CHECKERS)]
    refund = refund_request(donation=donation, amount=Decimal("1000"), reason="", requested_by=maker)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as daraja:  # patched for every thread
        daraja.get(TOKEN_URL, json={"access_token": "t", "expires_in": "3599"})
        sent = daraja.post(
            f"{API}/mpesa/reversal/v1/request",
            json={"ConversationID": "AG_1", "OriginatorConversationID": "x", "ResponseCode": "0"},
        )
        answers = run_together(
            [attempt(lambda c=c: refund_approve(refund_id=refund.pk, approved_by=c)) for c in checkers]
        )
    assert sent.call_count == 1
    assert sum(isinstance(a, Refund) for a in answers) == 1
    assert all("not awaiting approval" in a for a in answers if isinstance(a, str))
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SENT


def test_requests_racing_for_one_donation_make_one_refund():
    patient = PatientFactory(currency="KES", funding_goal=Decimal("100000"))
    donation = paid_donation(patient)
    makers = [staff_user(f"maker{i}", *MAKER) for i in range(CHECKERS)]
    answers = run_together(
        [
            attempt(lambda m=m: refund_request(donation=donation, amount=Decimal("1000"), reason="", requested_by=m))
            for m in makers
        ]
    )
    assert Refund.objects.filter(donation=donation).count() == 1
    assert sum(isinstance(a, Refund) for a in answers) == 1


def test_the_ledger_is_reversed_once_when_results_race():
    from donor.services import donation_refund

    patient = PatientFactory(currency="KES", funding_goal=Decimal("100000"))
    donation = paid_donation(patient)
    run_together([lambda: donation_refund(donation_id=donation.pk, amount=Decimal("1000")) for _ in range(CHECKERS)])
    assert Allocation.objects.filter(donation=donation, entry=Allocation.Entry.REVERSAL).count() == 1
    patient.refresh_from_db()
    assert patient.funding_received == Decimal("0")
