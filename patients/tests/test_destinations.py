"""Where payouts go, under maker-checker (patients.destinations): one staff user asks, a different one with
`patients.approve_destination_change` and a second factor approves, and only then does anything change; every
step is audited with the old and new values. The payouts side (snapshot, refusal, the checker's page) is in
payments/tests/services/test_payout_destinations.py; concurrent approvals on MariaDB in test_destinations_mysql.py.
"""

import ast
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client

from config.tests.helpers import login_with_second_factor
from patients.destinations import (
    DestinationRefused,
    approved_destination,
    destination_change_approve,
    destination_change_cancel,
    destination_change_reject,
    destination_change_request,
)
from patients.models import Patient, PayoutDestinationChange, TreatmentPartner
from patients.tests.factories import PatientFactory, TreatmentPartnerFactory
from payments.models import AuditEntry
from payments.tests.factories import staff_user

pytestmark = pytest.mark.django_db

OLD, NEW = "254708374149", "254799999999"
PARTNER_CHANGER = ("patients.change_treatmentpartner", "patients.view_treatmentpartner")
CHECKER = ("patients.approve_destination_change",)
CHANGES = "/admin/patients/payoutdestinationchange/"


@pytest.fixture
def partner():
    return TreatmentPartnerFactory(
        name="Kijabe Hospital", country="KE", payout_provider="mpesa", payout_msisdn=OLD, payout_account_name="KIJABE"
    )


@pytest.fixture
def insider():
    """A staff user who may change treatment partners (and nothing about approving)."""
    return staff_user("insider", *PARTNER_CHANGER)


@pytest.fixture
def checker():
    return staff_user("dest-checker", *CHECKER)


def wallet(partner) -> tuple[str, str, str]:
    partner = TreatmentPartner.objects.get(pk=partner.pk)
    return partner.payout_provider, partner.payout_msisdn, partner.payout_account_name


def request_new_number(partner, user, msisdn=NEW):
    return destination_change_request(
        requested_by=user,
        partner=partner,
        new={"payout_provider": "mpesa", "payout_msisdn": msisdn, "payout_account_name": "MINE"},
        reason="new wallet",
    )


def partner_form(partner, **changes) -> dict:
    """The partner's change form as the admin posts it, the old field names included (today's main saved
    `payout_msisdn` from the form directly)."""
    form = {
        "name": partner.name,
        "country": partner.country,
        "city": partner.city,
        "payout_provider": "mpesa",
        "payout_msisdn": NEW,
        "payout_account_name": "MINE",
        "new_payout_provider": "mpesa",
        "new_payout_msisdn": NEW,
        "new_payout_account_name": "MINE",
        "change_reason": "the hospital's new wallet",
    }
    return {**form, **changes}


# --- one person cannot change where payouts go --------------------------------------------------------


def test_one_staff_user_saving_a_new_wallet_in_the_admin_does_not_change_it(partner, insider):
    client = Client()
    client.force_login(insider)
    response = client.post(f"/admin/patients/treatmentpartner/{partner.pk}/change/", partner_form(partner))
    assert response.status_code == 302, response.content[:3000]
    assert wallet(partner) == ("mpesa", OLD, "KIJABE")  # nothing applied
    change = PayoutDestinationChange.objects.get(status="requested")
    assert change.requested_by == insider and change.partner == partner
    assert change.old == {"payout_provider": "mpesa", "payout_msisdn": OLD, "payout_account_name": "KIJABE"}
    assert change.new == {"payout_provider": "mpesa", "payout_msisdn": NEW, "payout_account_name": "MINE"}
    assert change.reason == "the hospital's new wallet"
    assert approved_destination(partner_id=partner.pk).msisdn == OLD  # what a payout would snapshot
    page = client.get(f"/admin/patients/treatmentpartner/{partner.pk}/change/").content.decode()
    assert f"#{change.pk}: payout_msisdn: {OLD} → {NEW}" in page and "not applied until approved" in page


def test_saving_other_fields_requests_nothing(partner, insider):
    client = Client()
    client.force_login(insider)
    form = partner_form(partner, city="Kijabe town", new_payout_msisdn=OLD, new_payout_account_name="KIJABE")
    response = client.post(f"/admin/patients/treatmentpartner/{partner.pk}/change/", form)
    assert response.status_code == 302
    assert TreatmentPartner.objects.get().city == "Kijabe town"
    assert wallet(partner) == ("mpesa", OLD, "KIJABE")
    assert not PayoutDestinationChange.objects.filter(status="requested").exists()


def test_a_new_partner_has_no_destination_until_a_second_person_approves_it(insider, checker):
    adder = staff_user("adder", "patients.add_treatmentpartner", "patients.view_treatmentpartner")
    client = Client()
    client.force_login(adder)
    form = {"name": "Insider Clinic", "country": "KE", "city": "", "new_payout_provider": "mpesa"}
    response = client.post("/admin/patients/treatmentpartner/add/", {**form, "new_payout_msisdn": NEW})
    assert response.status_code == 302, response.content[:3000]
    partner = TreatmentPartner.objects.get(name="Insider Clinic")
    assert wallet(partner) == ("", "", "")
    with pytest.raises(DestinationRefused, match="not been approved"):
        approved_destination(partner_id=partner.pk)
    change = PayoutDestinationChange.objects.get(partner=partner)
    assert change.old["payout_msisdn"] == "" and change.new["payout_msisdn"] == NEW
    destination_change_approve(change_id=change.pk, approved_by=checker)
    assert approved_destination(partner_id=partner.pk).msisdn == NEW


def test_the_requester_cannot_approve_their_own_change_even_holding_the_permission(partner):
    both = staff_user("both", *PARTNER_CHANGER, *CHECKER)
    change = request_new_number(partner, both)
    with pytest.raises(DestinationRefused, match="someone other than its requester"):
        destination_change_approve(change_id=change.pk, approved_by=both)
    assert wallet(partner)[1] == OLD
    assert PayoutDestinationChange.objects.get(pk=change.pk).status == "requested"


def test_approval_needs_the_permission(partner, insider):
    change = request_new_number(partner, insider)
    colleague = staff_user("colleague", *PARTNER_CHANGER)  # a second person, but not a checker
    with pytest.raises(DestinationRefused, match="approve_destination_change"):
        destination_change_approve(change_id=change.pk, approved_by=colleague)
    with pytest.raises(DestinationRefused, match="approve_destination_change"):
        destination_change_reject(change_id=change.pk, rejected_by=colleague)
    assert wallet(partner)[1] == OLD


def test_requesting_needs_the_change_permission(partner):
    viewer = staff_user("viewer", "patients.view_treatmentpartner")
    with pytest.raises(DestinationRefused, match="change_treatmentpartner"):
        request_new_number(partner, viewer)
    assert not PayoutDestinationChange.objects.filter(status="requested").exists()


def test_a_second_person_approves_and_the_change_applies_once_with_audit(partner, insider, checker):
    change = request_new_number(partner, insider)
    destination_change_approve(change_id=change.pk, approved_by=checker)
    assert wallet(partner) == ("mpesa", NEW, "MINE")
    change.refresh_from_db()
    assert (change.status, change.decided_by, change.requested_by) == ("approved", checker, insider)
    with pytest.raises(DestinationRefused, match="not awaiting approval"):
        destination_change_approve(change_id=change.pk, approved_by=checker)
    audit = {e.action: e for e in AuditEntry.objects.filter(action__startswith="destination.")}
    assert set(audit) == {"destination.seed", "destination.request", "destination.approve"}
    for step, actor in (("destination.request", insider), ("destination.approve", checker)):
        entry = audit[step]
        assert entry.actor == actor and entry.target == f"partner #{partner.pk} Kijabe Hospital"
        assert f"payout_msisdn: {OLD} → {NEW}" in entry.detail  # the old and the new value, in full
        assert "payout_account_name: KIJABE → MINE" in entry.detail
    assert "new wallet" in audit["destination.request"].detail


def test_reject_and_cancel_change_nothing(partner, insider, checker):
    change = request_new_number(partner, insider)
    destination_change_reject(change_id=change.pk, rejected_by=checker, note="number not confirmed by phone")
    change.refresh_from_db()
    assert change.status == "rejected" and change.decided_by == checker
    again = request_new_number(partner, insider)
    stranger = staff_user("stranger", *PARTNER_CHANGER)
    with pytest.raises(DestinationRefused, match="someone else's"):
        destination_change_cancel(change_id=again.pk, cancelled_by=stranger)
    destination_change_cancel(change_id=again.pk, cancelled_by=insider)
    assert PayoutDestinationChange.objects.get(pk=again.pk).status == "cancelled"
    with pytest.raises(DestinationRefused, match="not awaiting approval"):
        destination_change_approve(change_id=again.pk, approved_by=checker)
    assert wallet(partner)[1] == OLD
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"destination.reject", "destination.cancel"} <= actions


def test_one_pending_change_per_partner(partner, insider):
    request_new_number(partner, insider)
    with pytest.raises(DestinationRefused, match="already waiting"):
        request_new_number(partner, staff_user("other", *PARTNER_CHANGER), msisdn="254711111111")


@pytest.mark.parametrize(
    ("new", "message"),
    [
        ({"payout_provider": "mpesa", "payout_msisdn": "0799 999 999"}, "full international number"),
        ({"payout_provider": "mpesa", "payout_msisdn": ""}, "both"),
        ({"payout_provider": "paypal", "payout_msisdn": NEW}, "must be one of"),
    ],
)
def test_bad_destinations_are_refused(partner, insider, new, message):
    with pytest.raises(DestinationRefused, match=message):
        destination_change_request(requested_by=insider, partner=partner, new=new)


def test_a_seeded_destination_is_confirmed_through_the_admin_by_two_people(partner, insider, checker):
    client = Client()
    client.force_login(insider)
    form = partner_form(partner, new_payout_msisdn=OLD, new_payout_account_name="KIJABE", confirm_destination="on")
    assert client.post(f"/admin/patients/treatmentpartner/{partner.pk}/change/", form).status_code == 302
    change = PayoutDestinationChange.objects.get(status="requested")
    assert change.old == change.new
    destination_change_approve(change_id=change.pk, approved_by=checker)
    assert wallet(partner) == ("mpesa", OLD, "KIJABE")
    response = client.post(f"/admin/patients/treatmentpartner/{partner.pk}/change/", form)
    assert response.status_code == 200 and "Nothing to change" in response.content.decode()


def test_the_admin_shows_a_refused_request_on_the_form(partner, insider):
    client = Client()
    client.force_login(insider)
    url = f"/admin/patients/treatmentpartner/{partner.pk}/change/"
    response = client.post(url, partner_form(partner, new_payout_msisdn="12ab"))
    assert response.status_code == 200
    assert "full international number" in response.content.decode()
    assert not PayoutDestinationChange.objects.filter(status="requested").exists()


def test_approving_a_change_asked_against_other_values_is_refused(partner, insider, checker):
    change = request_new_number(partner, insider)
    TreatmentPartner.objects.filter(pk=partner.pk).update(payout_msisdn="254722222222")  # behind our back
    with pytest.raises(DestinationRefused, match="against other values"):
        destination_change_approve(change_id=change.pk, approved_by=checker)
    assert wallet(partner)[1] == "254722222222"
    with pytest.raises(DestinationRefused, match="not the one last approved"):
        approved_destination(partner_id=partner.pk)


# --- a patient's treatment partner -------------------------------------------------------------------


def patient_form(patient, **changes) -> dict:
    form = {
        "code": patient.code,
        "name": patient.name,
        "story": patient.story,
        "condition": patient.condition,
        "treatment": patient.treatment,
        "photo_url": "",
        "currency": patient.currency,
        "funding_goal": str(patient.funding_goal),
        "status": patient.status,
        "published": "on",
    }
    return {**form, **changes}


def test_moving_a_patient_to_another_partner_needs_a_second_person(partner, checker):
    patient = PatientFactory(treatment_partner=partner)
    mine = TreatmentPartnerFactory(name="Insider Clinic", payout_provider="mpesa", payout_msisdn=NEW)
    clerk = staff_user("clerk", "patients.change_patient", "patients.view_patient")
    client = Client()
    client.force_login(clerk)
    form = patient_form(patient, treatment_partner=mine.pk, new_treatment_partner=mine.pk, change_reason="moved")
    response = client.post(f"/admin/patients/patient/{patient.pk}/change/", form)
    assert response.status_code == 302, response.content[:3000]
    assert Patient.objects.get().treatment_partner == partner  # not moved yet
    change = PayoutDestinationChange.objects.get(status="requested")
    assert change.patient == patient and change.old["treatment_partner"] == partner.pk
    assert change.new == {"treatment_partner": mine.pk, "treatment_partner_name": "Insider Clinic"}
    page = client.get(f"/admin/patients/patient/{patient.pk}/change/").content.decode()
    assert f"Kijabe Hospital (#{partner.pk}) → Insider Clinic (#{mine.pk})" in page and "not applied until" in page
    with pytest.raises(DestinationRefused, match="approve_destination_change"):
        destination_change_approve(change_id=change.pk, approved_by=clerk)
    destination_change_approve(change_id=change.pk, approved_by=checker)
    assert Patient.objects.get().treatment_partner == mine
    entry = AuditEntry.objects.get(action="destination.approve")
    assert entry.target == f"patient {patient.code}" and "Kijabe Hospital" in entry.detail and "Insider" in entry.detail


def test_a_patient_edit_in_the_admin_keeps_the_ledger_totals_it_does_not_show(partner):
    """The admin writes only the fields on its form, so a save never puts back a stale copy of the others."""
    patient = PatientFactory(treatment_partner=partner)
    clerk = staff_user("clerk", "patients.change_patient", "patients.view_patient")
    client = Client()
    client.force_login(clerk)
    client.get(f"/admin/patients/patient/{patient.pk}/change/")
    Patient.objects.filter(pk=patient.pk).update(funding_received=500)  # a donation credited meanwhile
    response = client.post(f"/admin/patients/patient/{patient.pk}/change/", patient_form(patient, name="New name"))
    assert response.status_code == 302
    saved = Patient.objects.get()
    assert saved.name == "New name" and saved.funding_received == 500 and saved.treatment_partner == partner


# --- the checker's page: permission and second factor ---------------------------------------------------


def test_the_checker_approves_in_the_admin_only_with_a_second_factor(partner, insider, checker):
    change = request_new_number(partner, insider)
    client = Client()
    client.force_login(checker)  # password only
    response = client.get(CHANGES)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client.post(CHANGES, {"action": "approve", "_selected_action": [change.pk]})
    assert wallet(partner)[1] == OLD

    login_with_second_factor(client, checker)
    page = client.get(CHANGES).content.decode()
    assert NEW in page and OLD in page  # the full numbers, for checking with the hospital
    response = client.post(CHANGES, {"action": "approve", "_selected_action": [change.pk]}, follow=True)
    assert "Approved" in response.content.decode()
    assert wallet(partner)[1] == NEW


def test_the_requester_is_not_offered_approve_and_cannot_force_it(partner, insider):
    change = request_new_number(partner, insider)
    client = Client()
    client.force_login(insider)
    page = client.get(CHANGES)
    assert page.status_code == 200
    assert b'value="cancel"' in page.content and b'value="approve"' not in page.content
    client.post(CHANGES, {"action": "approve", "_selected_action": [change.pk]})
    assert wallet(partner)[1] == OLD


# --- data that exists, demo data, the one-way rule -----------------------------------------------------


def test_seed_demo_partners_have_approved_destinations_and_a_rerun_keeps_them(capsys):
    call_command("seed_demo")
    for partner in TreatmentPartner.objects.all():
        assert approved_destination(partner_id=partner.pk).msisdn == partner.payout_msisdn
    kijabe = TreatmentPartner.objects.get(name="Kijabe Hospital")
    checker_a, checker_b = staff_user("a", *PARTNER_CHANGER), staff_user("b", *CHECKER)
    destination_change_approve(change_id=request_new_number(kijabe, checker_a).pk, approved_by=checker_b)
    call_command("seed_demo")
    assert approved_destination(partner_id=kijabe.pk).msisdn == NEW  # not reset by the demo data


def test_the_migration_records_existing_destinations_as_approved_but_not_by_two_people():
    from django.apps import apps as global_apps

    from patients.selectors import payout_destination_summary

    module = __import__("patients.migrations.0003_record_existing_destinations", fromlist=["record"])
    partner = TreatmentPartnerFactory(payout_provider="mpesa", payout_msisdn=OLD, approved=False)
    TreatmentPartnerFactory(name="No wallet")
    with pytest.raises(DestinationRefused):
        approved_destination(partner_id=partner.pk)
    module.record(global_apps, None)
    assert approved_destination(partner_id=partner.pk).msisdn == OLD
    assert PayoutDestinationChange.objects.count() == 1
    summary = payout_destination_summary(partner, since=None)
    assert summary.matches_approval and not summary.approved_by_two
    assert "before a second person" in summary.approval.note

    # Two people confirm it by asking for the same values; after that the same values again change nothing.
    maker, checker = staff_user("m", *PARTNER_CHANGER), staff_user("c", *CHECKER)
    same = {"payout_provider": "mpesa", "payout_msisdn": OLD, "payout_account_name": ""}
    confirm = destination_change_request(requested_by=maker, partner=partner, new=same)
    destination_change_approve(change_id=confirm.pk, approved_by=checker)
    assert payout_destination_summary(partner, since=None).approved_by_two
    with pytest.raises(DestinationRefused, match="Nothing to change"):
        destination_change_request(requested_by=maker, partner=partner, new=same)


def test_patients_imports_nothing_of_donor_or_payments():
    root = Path(__file__).resolve().parents[1]
    for path in root.rglob("*.py"):
        if "tests" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert name.split(".")[0] not in ("donor", "payments"), f"{path.name} imports {name}"
