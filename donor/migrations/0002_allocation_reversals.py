"""Refunds add reversing allocation rows: an `entry` column, credit > 0 and reversal < 0, each once per
donation and target. The new unique index (it starts with donation_id) is created before the old one is
dropped, so MySQL always has an index for the donation foreign key."""

from decimal import Decimal

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("donor", "0001_initial"),
        ("patients", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="allocation",
            name="entry",
            field=models.CharField(
                choices=[("credit", "Credit"), ("reversal", "Reversal")], default="credit", max_length=10
            ),
        ),
        migrations.AddConstraint(
            model_name="allocation",
            constraint=models.UniqueConstraint(
                fields=("donation", "target", "entry"), name="allocation_once_per_donation_target_entry"
            ),
        ),
        migrations.RemoveConstraint(model_name="allocation", name="allocation_once_per_donation_target"),
        migrations.RemoveConstraint(model_name="allocation", name="allocation_amount_positive"),
        migrations.AddConstraint(
            model_name="allocation",
            constraint=models.CheckConstraint(
                condition=models.Q(models.Q(("amount__gt", Decimal("0")), ("entry", "credit")))
                | models.Q(models.Q(("amount__lt", Decimal("0")), ("entry", "reversal"))),
                name="allocation_credit_positive_reversal_negative",
            ),
        ),
    ]
