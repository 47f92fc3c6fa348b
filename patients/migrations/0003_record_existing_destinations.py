"""Destinations that exist when approvals begin are recorded as approved, so payouts to them keep working.

Nobody approved them as a second person, and the record says so: no requester, no approver, and a note the
payout checker sees next to the number (payments admin, "Payout destination"). Nothing stored is changed.
"""

from django.db import migrations
from django.utils import timezone

FIELDS = ("payout_provider", "payout_msisdn", "payout_account_name")
NOTE = "Recorded when approvals began: set before a second person had to approve it"


def record(apps, schema_editor):
    TreatmentPartner = apps.get_model("patients", "TreatmentPartner")
    Change = apps.get_model("patients", "PayoutDestinationChange")
    now = timezone.now()
    for partner in TreatmentPartner.objects.exclude(payout_provider="", payout_msisdn="").iterator():
        Change.objects.create(
            kind="partner",
            partner=partner,
            old={field: "" for field in FIELDS},
            new={field: getattr(partner, field) for field in FIELDS},
            status="approved",
            requested_at=now,
            decided_at=now,
            note=NOTE,
        )


def forget(apps, schema_editor):
    apps.get_model("patients", "PayoutDestinationChange").objects.filter(note=NOTE, requested_by=None).delete()


class Migration(migrations.Migration):
    dependencies = [("patients", "0002_payout_destination_change")]

    operations = [migrations.RunPython(record, forget)]
