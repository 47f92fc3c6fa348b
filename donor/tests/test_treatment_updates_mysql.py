"""On MariaDB/MySQL: two checkers approving the same update at once publish it once, and fan-outs and relays
running together send each donor one message (the approval's row lock, the outbox key, SKIP LOCKED)."""

from decimal import Decimal

import pytest
from django.core import mail

from donor.notifications import notices_send
from donor.services import donor_for_guest
from donor.tests.test_treatment_updates import paid
from donor.updates import update_notices_record
from patients.models import TreatmentUpdate
from patients.tests.factories import PatientFactory
from patients.updates import UpdateRefused, treatment_update_approve, treatment_update_write
from payments.tests.factories import staff_user
from payments.tests.helpers import run_together

pytestmark = [pytest.mark.mysql, pytest.mark.django_db(transaction=True)]


def test_concurrent_approvals_and_fan_outs_send_each_donor_one_message():
    patient = PatientFactory(currency="TZS", funding_goal=Decimal("1000000"))
    for n in range(5):
        paid(patient, donor_for_guest(email=f"donor{n}@example.org"))
    writer = staff_user("writer", "patients.add_treatmentupdate")
    checkers = [staff_user(f"checker{n}", "patients.approve_treatmentupdate") for n in range(2)]
    update = treatment_update_write(author=writer, patient=patient, kind="final", text="Home now.")
    mail.outbox.clear()

    def approve(checker):
        try:
            return treatment_update_approve(update_id=update.pk, approved_by=checker)
        except UpdateRefused:
            return None

    approved = run_together([lambda c=c: approve(c) for c in checkers])
    assert len([a for a in approved if a is not None]) == 1
    published = TreatmentUpdate.objects.get(pk=update.pk)
    run_together([lambda: update_notices_record(update=published)] * 4 + [lambda: notices_send()] * 4)
    notices_send()
    sent = sorted(m.to[0] for m in mail.outbox if m.subject.startswith("News of"))
    assert sent == [f"donor{n}@example.org" for n in range(5)]
