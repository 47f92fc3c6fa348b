"""A pledge is a promise to give every month; each month (`PledgeCycle`) is an ordinary donation prompted on the
pledge's rail, so receipts, ledger, reconciliation and refunds are the donation's own."""

import secrets

from django.db import models

from donor.models import Donation, Donor
from patients.models import MONEY, Patient


def new_pledge_reference() -> str:
    return f"PLG-{secrets.token_hex(5).upper()}"


class Pledge(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        PAUSED = "paused"
        CANCELLED = "cancelled"
        LAPSED = "lapsed", "Lapsed (three missed months)"

    reference = models.CharField(max_length=20, unique=True, default=new_pledge_reference)
    donor = models.ForeignKey(Donor, on_delete=models.PROTECT, related_name="pledges")
    msisdn = models.CharField(max_length=15, blank=True, help_text="E.164 digits without +")
    provider = models.CharField(max_length=20)
    channel = models.CharField(max_length=20, blank=True)
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    patient = models.ForeignKey(Patient, null=True, blank=True, on_delete=models.PROTECT, related_name="pledges")
    day_of_month = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    next_due_on = models.DateField(db_index=True)
    skip_next = models.BooleanField(default=False)
    consecutive_misses = models.PositiveSmallIntegerField(default=0)
    language = models.CharField(max_length=10, default="en")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="pledge_amount_positive"),
            models.CheckConstraint(
                condition=models.Q(day_of_month__gte=1, day_of_month__lte=28), name="pledge_day_of_month_1_28"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.currency} {self.amount} on day {self.day_of_month} ({self.status})"


class PledgeCycle(models.Model):
    """One month of a pledge, unique per due date: whoever claims a step first (reminder, each prompt) does it,
    so any number of runs (or schedulers) remind once and start one donation per prompt."""

    class Status(models.TextChoices):
        OPEN = "open"
        PAID = "paid"
        MISSED = "missed"
        SKIPPED = "skipped"
        PAUSED = "paused"  # the pledge was paused or cancelled before it was prompted

    pledge = models.ForeignKey(Pledge, on_delete=models.PROTECT, related_name="cycles")
    due_on = models.DateField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN, db_index=True)
    reminded_at = models.DateTimeField(null=True, blank=True)
    pushes = models.PositiveSmallIntegerField(default=0, help_text="Payment prompts started for this month")
    last_push_at = models.DateTimeField(null=True, blank=True)
    donation = models.ForeignKey(Donation, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    to_general_fund = models.BooleanField(default=False)
    pay_link_sent_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-due_on", "-id"]
        constraints = [models.UniqueConstraint(fields=["pledge", "due_on"], name="pledge_cycle_once_per_due_date")]

    def __str__(self) -> str:
        return f"{self.pledge.reference} due {self.due_on} ({self.status})"
