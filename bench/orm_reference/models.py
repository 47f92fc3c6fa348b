"""Unmanaged models over the site's tables, with only the columns the reference reads or must write."""

from django.db import models


class CallbackEvent(models.Model):
    """payments_callbackevent: the NOT NULL columns (the nullable ones are left to their NULL default)."""

    provider = models.CharField(max_length=20)
    kind = models.CharField(max_length=30)
    body = models.TextField()
    headers = models.JSONField()
    client_ip = models.GenericIPAddressField(null=True)
    body_digest = models.CharField(max_length=64)
    url_token_digest = models.CharField(max_length=64)
    trust = models.CharField(max_length=12)
    status = models.CharField(max_length=20)
    error = models.TextField()
    attempts = models.PositiveSmallIntegerField()
    our_reference = models.CharField(max_length=64)
    provider_reference = models.CharField(max_length=100)
    received_at = models.DateTimeField()
    body_kept = models.BooleanField()
    body_size = models.PositiveIntegerField()
    traceback = models.TextField()

    class Meta:
        managed = False
        db_table = "payments_callbackevent"

    def __str__(self) -> str:
        return f"event {self.pk}"


class Donation(models.Model):
    reference = models.CharField(max_length=64, unique=True)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    status = models.CharField(max_length=20)
    patient_id = models.BigIntegerField(null=True)
    updated_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True)

    class Meta:
        managed = False
        db_table = "donor_donation"

    def __str__(self) -> str:
        return self.reference


class Patient(models.Model):
    funding_received = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        managed = False
        db_table = "patients_patient"

    def __str__(self) -> str:
        return f"patient {self.pk}"
