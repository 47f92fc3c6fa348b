"""Payouts go only to a destination a second person approved (patients.destinations): the request snapshots the
approved one (never a change still pending), refuses one nobody approved, and an approval of a payout whose
destination changed since its request is refused (the checker's page showing it is test_admin.py's)."""

import json
from decimal import Decimal

import pytest

from patients.destinations import destination_change_approve, destination_change_request
from patients.models import Patient, TreatmentPartner
from patients.tests.factories import TreatmentPartnerFactory
from payments.models import Payout
from payments.services.payouts import PayoutRefused, payout_approve, payout_request
from payments.tests.drivers import funded_patient, request_accepted
from payments.tests.factories import MAKER_PERMISSIONS, staff_user
from payments.tests.mpesa_fakes import B2C_URL

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("mpesa_settings", "daraja")]

OLD, NEW = "254708374149", "254799999999"


@pytest.fixture
def patient():
    """Fully funded, its partner's approved destination M-Pesa number OLD."""
    return funded_patient(provider="mpesa", msisdn=OLD, amount=Decimal("50000"), currency="KES")


@pytest.fixture
def insider():
    """May request payouts and change partners: today's one person who could point a wallet at themselves."""
    return staff_user("insider", *MAKER_PERMISSIONS, "patients.change_treatmentpartner")


def sent_to(daraja) -> list[str]:
    return [json.loads(c.request.body)["PartyB"] for c in daraja.calls if c.request.url == B2C_URL]


def approved(change) -> None:
    destination_change_approve(
        change_id=change.pk, approved_by=staff_user("dest-checker", "patients.approve_destination_change")
    )


def ask_for_new_number(partner, user):
    new = {"payout_provider": "mpesa", "payout_msisdn": NEW, "payout_account_name": "MINE"}
    return destination_change_request(requested_by=user, partner=partner, new=new)


def test_a_payout_requested_while_a_change_is_pending_goes_to_the_approved_number(daraja, patient, insider, checker):
    ask_for_new_number(patient.treatment_partner, insider)
    daraja.post(B2C_URL, json=request_accepted())
    payout = payout_request(patient=patient, amount=Decimal("20000"), requested_by=insider)
    assert (payout.provider, payout.msisdn) == ("mpesa", OLD)
    payout = payout_approve(payout_id=payout.pk, approved_by=checker)
    assert payout.status == Payout.Status.SENT
    assert sent_to(daraja) == [OLD]


@pytest.mark.parametrize(
    ("partner", "message"),
    [
        ({"payout_msisdn": NEW, "approved": False}, "not been approved by a second person"),
        ("written-outside-the-approval", "not the one last approved"),
        ({"payout_msisdn": ""}, "M-Pesa payout number"),
        ({"payout_provider": "", "payout_msisdn": ""}, "no payout provider"),
    ],
    ids=["nobody-approved-it", "written-outside-the-approval", "no-number", "no-provider"],
)
def test_a_destination_we_may_not_or_cannot_pay_gets_no_payout(patient, insider, partner, message):
    if partner == "written-outside-the-approval":
        TreatmentPartner.objects.filter(pk=patient.treatment_partner_id).update(payout_msisdn=NEW)
    else:
        partner = TreatmentPartnerFactory(**{"payout_provider": "mpesa", **partner})
        Patient.objects.filter(pk=patient.pk).update(treatment_partner=partner)
    patient.refresh_from_db()
    with pytest.raises(PayoutRefused, match=message):
        payout_request(patient=patient, amount=Decimal("1000"), requested_by=insider)
    assert not Payout.objects.exists()


def new_number(patient, insider) -> str:
    approved(ask_for_new_number(patient.treatment_partner, insider))
    return NEW


def another_partner(patient, insider) -> str:
    other = TreatmentPartnerFactory(payout_provider="mpesa", payout_msisdn="254711111111")
    clerk = staff_user("clerk", "patients.change_patient")
    approved(destination_change_request(requested_by=clerk, patient=patient, new={"treatment_partner": other.pk}))
    return other.payout_msisdn


@pytest.mark.parametrize("change", [new_number, another_partner], ids=["new-number", "moved-to-another-partner"])
def test_a_payout_whose_destination_changed_after_its_request_is_not_sent(daraja, patient, insider, checker, change):
    payout = payout_request(patient=patient, amount=Decimal("20000"), requested_by=insider)
    number = change(patient, insider)
    with pytest.raises(PayoutRefused, match="changed after it was requested"):
        payout_approve(payout_id=payout.pk, approved_by=checker)
    assert Payout.objects.get().status == Payout.Status.REQUESTED and sent_to(daraja) == []
    daraja.post(B2C_URL, json=request_accepted())
    patient.refresh_from_db()
    again = payout_request(patient=patient, amount=Decimal("10000"), requested_by=insider)
    assert payout_approve(payout_id=again.pk, approved_by=checker).msisdn == number
    assert sent_to(daraja) == [number]
