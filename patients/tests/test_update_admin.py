"""Treatment updates in the admin: one staff user writes, another approves with the list action (the writer
cannot), a partner's member sees only that partner's patients, and the patients list filters those funded more
than 60 days ago with no approved update."""

from datetime import timedelta

import pytest
from django.utils import timezone

from patients.models import TreatmentUpdate
from patients.tests.factories import PatientFactory
from payments.tests.factories import staff_user

pytestmark = pytest.mark.django_db
WRITE = ("patients.add_treatmentupdate", "patients.view_treatmentupdate")
APPROVE = ("patients.approve_treatmentupdate", "patients.view_treatmentupdate")


def test_written_in_the_admin_and_approved_by_another_person(client):
    patient = PatientFactory()
    writer, checker = staff_user("writer", *WRITE, *APPROVE), staff_user("checker", *APPROVE)
    client.force_login(writer)
    answer = client.post("/admin/patients/treatmentupdate/add/",
                         {"patient": patient.pk, "kind": "preliminary", "text": "  Admitted today.  "})  # fmt: skip
    assert answer.status_code == 302
    update = TreatmentUpdate.objects.get()
    assert (update.written_by, update.text, update.status) == (writer, "Admitted today.", "requested")
    action = {"action": "approve", "_selected_action": [update.pk]}
    client.post("/admin/patients/treatmentupdate/", action, follow=True)
    assert TreatmentUpdate.objects.get().status == "requested"  # the writer may not approve their own
    client.force_login(checker)
    client.post("/admin/patients/treatmentupdate/", action, follow=True)
    update.refresh_from_db()
    assert (update.status, update.decided_by) == ("approved", checker)


def test_a_photo_without_consent_is_a_form_error(client):
    patient = PatientFactory()
    client.force_login(staff_user("writer", *WRITE))
    answer = client.post("/admin/patients/treatmentupdate/add/", {"patient": patient.pk, "kind": "final",
                         "text": "Home.", "photo_url": "https://example.org/a.jpg"})  # fmt: skip
    assert answer.status_code == 200 and b"photo consent is not recorded" in answer.content
    assert not TreatmentUpdate.objects.exists()


def test_a_partners_member_sees_only_that_partners_patients(client):
    mine, theirs = PatientFactory(), PatientFactory()
    member = staff_user("nurse", *WRITE)
    mine.treatment_partner.members.add(member)
    client.force_login(member)
    form = client.get("/admin/patients/treatmentupdate/add/").content.decode()
    assert f'value="{mine.pk}"' in form and f'value="{theirs.pk}"' not in form


def test_the_patients_list_filters_those_whose_update_is_due(client):
    long_ago = timezone.now() - timedelta(days=61)
    PatientFactory(code="PAT-DUE", fully_funded_at=long_ago, status="fully_funded")
    told = PatientFactory(code="PAT-TOLD", fully_funded_at=long_ago, status="fully_funded")
    PatientFactory(code="PAT-RECENT", fully_funded_at=timezone.now() - timedelta(days=10), status="fully_funded")
    TreatmentUpdate.objects.create(patient=told, kind="final", text="Done.", status="approved",
                                   written_by=staff_user("w", *WRITE), decided_at=timezone.now())  # fmt: skip
    client.force_login(staff_user("viewer", "patients.view_patient"))
    page = client.get("/admin/patients/patient/?update_due=due").content.decode()
    assert "PAT-DUE" in page and "PAT-TOLD" not in page and "PAT-RECENT" not in page
