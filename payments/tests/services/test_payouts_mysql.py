"""Payouts against a real MariaDB/MySQL server: checkers approving at once send one payout.

Skipped on SQLite (conftest). Daraja is mocked with `responses` (patched process-wide, so every thread sees it);
each thread has its own database connection.
"""

from decimal import Decimal

import pytest

from patients.models import Patient
from patients.tests.factories import PatientFactory, TreatmentPartnerFactory
from payments.models import Payout
from payments.services.payouts import PayoutRefused, payout_approve, payout_request
from payments.tests.factories import CHECKER_PERMISSIONS, staff_user
from payments.tests.helpers import run_together
from payments.tests.mpesa_fakes import B2C_URL

pytestmark = [pytest.mark.mysql, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("mpesa_settings")]


def test_two_checkers_approving_at_once_send_one_payout(daraja, maker):
    partner = TreatmentPartnerFactory(payout_provider="mpesa", payout_msisdn="254708374149")
    patient = PatientFactory(
        currency="KES", funding_received=Decimal("5000"), status=Patient.Status.FULLY_FUNDED, treatment_partner=partner
    )
    checkers = [staff_user(f"checker{i}", *CHECKER_PERMISSIONS) for i in range(5)]
    payout = payout_request(patient=patient, amount=Decimal("5000"), requested_by=maker)

    def approve(user):
        def run():
            try:
                return payout_approve(payout_id=payout.pk, approved_by=user).status
            except PayoutRefused:
                return "refused"

        return run

    daraja.post(
        B2C_URL, json={"ConversationID": "AG_1", "OriginatorConversationID": payout.reference, "ResponseCode": "0"}
    )
    results = run_together([approve(user) for user in checkers])
    sent = [c for c in daraja.calls if c.request.url == B2C_URL]
    assert sorted(results) == ["refused"] * 4 + ["sent"]
    assert len(sent) == 1
    assert Payout.objects.get().status == Payout.Status.SENT
