from decimal import Decimal
from typing import TypedDict

from django.core.validators import MinValueValidator
from django.db import models


class _MoneyField(TypedDict):
    max_digits: int
    decimal_places: int


# Money is Decimal with 12 digits, 2 of them decimals, plus an ISO currency code next to it. Never float.
MONEY: _MoneyField = {"max_digits": 12, "decimal_places": 2}


class TreatmentPartner(models.Model):
    """A hospital or clinic that treats patients; payouts go to its wallet."""

    name = models.CharField(max_length=200, unique=True)
    country = models.CharField(max_length=2, default="TZ", help_text="ISO 3166 alpha-2")
    city = models.CharField(max_length=100, blank=True)
    payout_provider = models.CharField(max_length=20, blank=True, help_text="mpesa, azampay, mtn, airtel")
    payout_msisdn = models.CharField(max_length=15, blank=True, help_text="E.164 digits without +")
    payout_account_name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Patient(models.Model):
    class Status(models.TextChoices):
        FUNDING = "funding", "Raising funds"
        FULLY_FUNDED = "fully_funded", "Fully funded"
        IN_TREATMENT = "in_treatment", "In treatment"
        TREATED = "treated", "Treated"

    code = models.CharField(max_length=20, unique=True, help_text="Public id such as PAT-0001")
    name = models.CharField(max_length=200)
    story = models.TextField(blank=True)
    condition = models.CharField(max_length=200, blank=True)
    treatment = models.CharField(max_length=200, blank=True)
    photo_url = models.URLField(blank=True)
    treatment_partner = models.ForeignKey(
        TreatmentPartner, null=True, blank=True, on_delete=models.PROTECT, related_name="patients"
    )
    currency = models.CharField(max_length=3, help_text="ISO 4217; donations must use this currency")
    funding_goal = models.DecimalField(**MONEY, validators=[MinValueValidator(Decimal("0.01"))])
    # A cache of Sum(Allocation.amount); `manage.py verify_ledger` proves it.
    funding_received = models.DecimalField(**MONEY, default=Decimal("0"))
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.FUNDING, db_index=True)
    fully_funded_at = models.DateTimeField(null=True, blank=True)
    published = models.BooleanField(default=False, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=models.Q(funding_received__gte=0), name="patient_funding_non_negative"),
            models.CheckConstraint(condition=models.Q(funding_goal__gt=0), name="patient_goal_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name else ""

    @property
    def funding_percent(self) -> int:
        if not self.funding_goal:
            return 0
        return min(100, int(self.funding_received * 100 / self.funding_goal))

    @property
    def amount_needed(self) -> Decimal:
        return max(Decimal("0"), self.funding_goal - self.funding_received)

    @property
    def is_accepting_donations(self) -> bool:
        return self.published and self.status == self.Status.FUNDING
