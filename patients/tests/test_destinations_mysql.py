"""Payout destination changes against a real MariaDB/MySQL server: checkers approving one change at once apply
it once; makers asking at once leave one request pending. Skipped on SQLite (conftest); each thread has its own
database connection."""

import pytest

from patients.destinations import DestinationRefused, destination_change_approve, destination_change_request
from patients.models import PayoutDestinationChange, TreatmentPartner
from patients.tests.factories import TreatmentPartnerFactory
from payments.models import AuditEntry
from payments.tests.factories import staff_user
from payments.tests.helpers import run_together

pytestmark = [pytest.mark.mysql, pytest.mark.django_db(transaction=True)]

OLD, NEW = "254708374149", "254799999999"


def new_wallet(msisdn: str) -> dict:
    return {"payout_provider": "mpesa", "payout_msisdn": msisdn, "payout_account_name": ""}


def test_checkers_approving_one_change_at_once_apply_it_once():
    partner = TreatmentPartnerFactory(payout_provider="mpesa", payout_msisdn=OLD)
    maker = staff_user("maker", "patients.change_treatmentpartner")
    change = destination_change_request(requested_by=maker, partner=partner, new=new_wallet(NEW))
    checkers = [staff_user(f"checker{i}", "patients.approve_destination_change") for i in range(5)]

    def approve(user):
        def run():
            try:
                return destination_change_approve(change_id=change.pk, approved_by=user).status
            except DestinationRefused:
                return "refused"

        return run

    results = run_together([approve(user) for user in checkers])
    assert sorted(results) == ["approved"] + ["refused"] * 4
    assert TreatmentPartner.objects.get().payout_msisdn == NEW
    assert AuditEntry.objects.filter(action="destination.approve").count() == 1
    winner = PayoutDestinationChange.objects.get(pk=change.pk).decided_by
    assert winner in checkers


def test_makers_asking_at_once_leave_one_request_pending():
    partner = TreatmentPartnerFactory(payout_provider="mpesa", payout_msisdn=OLD)
    makers = [staff_user(f"maker{i}", "patients.change_treatmentpartner") for i in range(4)]

    def ask(user, msisdn):
        def run():
            try:
                return destination_change_request(requested_by=user, partner=partner, new=new_wallet(msisdn)).status
            except DestinationRefused:
                return "refused"

        return run

    results = run_together([ask(user, f"25479999999{i}") for i, user in enumerate(makers)])
    assert sorted(results) == ["refused"] * 3 + ["requested"]
    assert PayoutDestinationChange.objects.filter(status="requested").count() == 1
    assert TreatmentPartner.objects.get().payout_msisdn == OLD
