"""Payouts go only to a destination a second person approved (patients.destinations): the request snapshots the
approved one (never a change still pending), refuses one nobody approved, and an approval of a payout whose
destination changed since its request is refused (the checker's page showing it is test_admin.py's). Daraja is
mocked with `responses`.
"""

import json
from decimal import Decimal

import pytest

from patients.destinations import destination_change_approve, destination_change_request
from patients.models import Patient, TreatmentPartner
from patients.tests.factories import PatientFactory, TreatmentPartnerFactory
from payments.models import Payout
from payments.services.payouts import PayoutRefused, payout_approve, payout_request
from payments.tests.factories import MAKER_PERMISSIONS, staff_user
from payments.tests.mpesa_fakes import B2C_URL

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("mpesa_settings", "daraja")]

OLD, NEW = "254708374149", "254799999999"


@pytest.fixture
def partner():
    return TreatmentPartnerFactory(
        name="Kijabe Hospital", country="KE", payout_provider="mpesa", payout_msisdn=OLD, payout_account_name="KIJABE"
    )


@pytest.fixture
def patient(partner):
    return PatientFactory(
        currency="KES",
        funding_goal=Decimal("50000"),
        funding_received=Decimal("50000"),
        status=Patient.Status.FULLY_FUNDED,
        treatment_partner=partner,
    )


@pytest.fixture
def insider():
    """May request payouts and change partners: today's one person who could point a wallet at themselves."""
    return staff_user("insider", *MAKER_PERMISSIONS, "patients.change_treatmentpartner")


@pytest.fixture
def dest_checker():
    return staff_user("dest-checker", "patients.approve_destination_change")


def sent_to(daraja) -> list[str]:
    return [json.loads(c.request.body)["PartyB"] for c in daraja.calls if c.request.url == B2C_URL]


def accept(daraja) -> None:
    daraja.post(B2C_URL, json={"ConversationID": "AG_1", "OriginatorConversationID": "x", "ResponseCode": "0"})


def ask_for_new_number(partner, user):
    return destination_change_request(
        requested_by=user,
        partner=partner,
        new={"payout_provider": "mpesa", "payout_msisdn": NEW, "payout_account_name": "MINE"},
    )


def test_a_payout_requested_while_a_change_is_pending_goes_to_the_approved_number(
    daraja, patient, insider, checker, dest_checker
):
    ask_for_new_number(patient.treatment_partner, insider)
    accept(daraja)
    payout = payout_request(patient=patient, amount=Decimal("20000"), requested_by=insider)
    assert (payout.provider, payout.msisdn) == ("mpesa", OLD)
    payout = payout_approve(payout_id=payout.pk, approved_by=checker)
    assert payout.status == Payout.Status.SENT
    assert sent_to(daraja) == [OLD]


def test_a_partner_whose_destination_nobody_approved_gets_no_payout(patient, insider):
    unapproved = TreatmentPartnerFactory(payout_provider="mpesa", payout_msisdn=NEW, approved=False)
    Patient.objects.filter(pk=patient.pk).update(treatment_partner=unapproved)
    patient.refresh_from_db()
    with pytest.raises(PayoutRefused, match="not been approved by a second person"):
        payout_request(patient=patient, amount=Decimal("1000"), requested_by=insider)
    assert not Payout.objects.exists()


def test_a_destination_written_outside_the_approval_gets_no_payout(patient, insider):
    TreatmentPartner.objects.filter(pk=patient.treatment_partner_id).update(payout_msisdn=NEW)
    patient.refresh_from_db()
    with pytest.raises(PayoutRefused, match="not the one last approved"):
        payout_request(patient=patient, amount=Decimal("1000"), requested_by=insider)
    assert not Payout.objects.exists()


def test_a_payout_whose_destination_changed_after_its_request_is_not_sent(
    daraja, patient, insider, checker, dest_checker
):
    payout = payout_request(patient=patient, amount=Decimal("20000"), requested_by=insider)
    destination_change_approve(
        change_id=ask_for_new_number(patient.treatment_partner, insider).pk, approved_by=dest_checker
    )
    with pytest.raises(PayoutRefused, match="changed after it was requested"):
        payout_approve(payout_id=payout.pk, approved_by=checker)
    assert Payout.objects.get().status == Payout.Status.REQUESTED and sent_to(daraja) == []
    accept(daraja)
    again = payout_request(patient=patient, amount=Decimal("10000"), requested_by=insider)
    assert payout_approve(payout_id=again.pk, approved_by=checker).msisdn == NEW
    assert sent_to(daraja) == [NEW]


def test_a_payout_for_a_patient_moved_to_another_partner_after_its_request_is_not_sent(
    daraja, patient, insider, checker, dest_checker
):
    payout = payout_request(patient=patient, amount=Decimal("20000"), requested_by=insider)
    other = TreatmentPartnerFactory(payout_provider="mpesa", payout_msisdn="254711111111")
    clerk = staff_user("clerk", "patients.change_patient")
    move = destination_change_request(requested_by=clerk, patient=patient, new={"treatment_partner": other.pk})
    destination_change_approve(change_id=move.pk, approved_by=dest_checker)
    with pytest.raises(PayoutRefused, match="changed after it was requested"):
        payout_approve(payout_id=payout.pk, approved_by=checker)
    assert sent_to(daraja) == []
