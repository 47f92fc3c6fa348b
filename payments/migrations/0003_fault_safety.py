"""Fault safety: the inbox as a work queue, keyed digests instead of clear URL tokens, payer references.

- Payment.callback_token (clear) → callback_token_digest (HMAC); existing tokens are converted in place, so
  callbacks for payments still pending keep working.
- CallbackEvent.url_token (clear) → url_token_digest; sha256 → body_digest. Digests of bodies stored before
  this migration cannot be recomputed (the stored body is redacted): they keep their old plain SHA-256, so a
  resend of such an old delivery is processed again rather than recognised as a duplicate — harmless, since
  processing is idempotent.
- CallbackEvent.next_attempt_at and the `dead` status for the sweeper; permissions for admin powers.
"""

from django.db import migrations, models


def digest_tokens(apps, schema_editor):
    from payments.url_tokens import url_token_digest

    Payment = apps.get_model("payments", "Payment")
    for payment in Payment.objects.exclude(callback_token_digest__isnull=True).only("pk", "callback_token_digest"):
        Payment.objects.filter(pk=payment.pk).update(callback_token_digest=url_token_digest(payment.callback_token_digest))
    CallbackEvent = apps.get_model("payments", "CallbackEvent")
    for event in CallbackEvent.objects.exclude(url_token_digest="").only("pk", "url_token_digest"):
        CallbackEvent.objects.filter(pk=event.pk).update(url_token_digest=url_token_digest(event.url_token_digest))


class Migration(migrations.Migration):
    dependencies = [("payments", "0002_payout")]

    operations = [
        migrations.RenameField("payment", "callback_token", "callback_token_digest"),
        migrations.AlterField(
            model_name="payment",
            name="callback_token_digest",
            field=models.CharField(blank=True, editable=False, max_length=64, null=True, unique=True),
        ),
        migrations.RenameField("callbackevent", "url_token", "url_token_digest"),
        migrations.AlterField(
            model_name="callbackevent",
            name="url_token_digest",
            field=models.CharField(
                blank=True, help_text="HMAC of the secret path segment it arrived on (never the token)", max_length=64
            ),
        ),
        migrations.RunPython(digest_tokens, migrations.RunPython.noop),
        migrations.RenameField("callbackevent", "sha256", "body_digest"),
        migrations.AddField(
            model_name="payment",
            name="payer_reference",
            field=models.CharField(blank=True, max_length=128),
        ),
        migrations.AddField(
            model_name="callbackevent",
            name="next_attempt_at",
            field=models.DateTimeField(blank=True, db_index=True, null=True),
        ),
        migrations.AlterField(
            model_name="callbackevent",
            name="attempts",
            field=models.PositiveSmallIntegerField(default=0, help_text="Processing attempts so far"),
        ),
        migrations.AlterField(
            model_name="callbackevent",
            name="status",
            field=models.CharField(
                choices=[
                    ("received", "Received"),
                    ("processed", "Processed"),
                    ("duplicate", "Duplicate"),
                    ("ignored", "Ignored"),
                    ("rejected", "Rejected"),
                    ("failed", "Failed"),
                    ("review", "Review"),
                    ("dead", "Dead"),
                ],
                db_index=True,
                default="received",
                max_length=20,
            ),
        ),
        migrations.AddField(
            model_name="idempotencyrecord",
            name="locked_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="idempotencyrecord",
            name="donation_reference",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AlterModelOptions(
            name="payment",
            options={
                "ordering": ["-created_at", "-id"],
                "permissions": [("check_payment", "Can ask the provider about a payment now")],
            },
        ),
        migrations.AlterModelOptions(
            name="callbackevent",
            options={
                "ordering": ["-received_at", "-id"],
                "permissions": [
                    ("replay_callbackevent", "Can replay stored callbacks"),
                    ("accept_held_callbackevent", "Can credit a held paybill confirmation after checking the statement"),
                ],
            },
        ),
        migrations.AlterModelOptions(
            name="payout",
            options={
                "ordering": ["-created_at", "-id"],
                "permissions": [
                    ("approve_payout", "Can approve and send payouts (the checker of maker-checker)"),
                    ("resolve_payout", "Can settle an ambiguous or stuck payout by hand"),
                ],
            },
        ),
    ]
