"""Every donation gets an unguessable public handle; existing donations get theirs here (each its own)."""

import secrets

from django.db import migrations, models

import donor.models


def give_existing_donations_a_token(apps, schema_editor):
    Donation = apps.get_model("donor", "Donation")
    for donation in Donation.objects.filter(public_token__isnull=True).only("pk").iterator(chunk_size=500):
        Donation.objects.filter(pk=donation.pk).update(public_token=secrets.token_urlsafe(24))


class Migration(migrations.Migration):
    dependencies = [("donor", "0002_allocation_reversals")]

    operations = [
        migrations.AddField(
            model_name="donation", name="public_token", field=models.CharField(max_length=64, null=True, editable=False)
        ),
        migrations.RunPython(give_existing_donations_a_token, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="donation",
            name="public_token",
            field=models.CharField(default=donor.models.new_public_token, editable=False, max_length=64, unique=True),
        ),
    ]
