"""Payments refused when they were started were marked failed without a completed_at, so the settlement file
(which lists payments by the time they ended) left them out: they ended when they were last written."""

from django.db import migrations
from django.db.models import F


def backfill(apps, schema_editor):
    Payment = apps.get_model("payments", "Payment")
    ended = ["succeeded", "failed", "cancelled", "expired"]
    Payment.objects.filter(status__in=ended, completed_at__isnull=True).update(
        completed_at=F("updated_at"), next_check_at=None
    )


class Migration(migrations.Migration):
    dependencies = [("payments", "0005_history_and_audit")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
