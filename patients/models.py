"""Patients, treatment partners and their payout destinations, and MONEY, the one definition of a money column
(Decimal, 12 digits, 2 decimals) every app uses so amounts are never float and always the same size."""

from decimal import Decimal
from typing import TypedDict

from django.conf import settings
from django.core.validators import MaxLengthValidator, MinValueValidator
from django.db import models
from django.utils import timezone


class _MoneyField(TypedDict):
    max_digits: int
    decimal_places: int


# Money is Decimal with 12 digits, 2 of them decimals, plus an ISO currency code next to it. Never float.
MONEY: _MoneyField = {"max_digits": 12, "decimal_places": 2}


class TreatmentPartner(models.Model):
    """A hospital or clinic that treats patients; payouts go to its wallet.

    `payout_provider`, `payout_msisdn` and `payout_account_name` are the destination a second person approved:
    only `patients.destinations.destination_change_approve` writes them (PayoutDestinationChange), and a payout
    refuses a destination that is not the one last approved.
    """

    name = models.CharField(max_length=200, unique=True)
    country = models.CharField(max_length=2, default="TZ", help_text="ISO 3166 alpha-2")
    city = models.CharField(max_length=100, blank=True)
    payout_provider = models.CharField(max_length=20, blank=True, help_text="mpesa, azampay, mtn, airtel")
    payout_msisdn = models.CharField(max_length=15, blank=True, help_text="E.164 digits without +")
    payout_account_name = models.CharField(max_length=200, blank=True)
    # The partner's own people (a doctor, a social worker) who may write treatment updates for its patients.
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="treatment_partners")
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

    # At most 12 characters: it is the account number donors type on the paybill (the share kit prints it), and an
    # STK push naming it as AccountReference must stay within Daraja's 12 (docs/providers/mpesa.md), or the push
    # is refused or never prompts. Validated in the admin; the column stays wider for codes stored before the rule.
    code = models.CharField(
        max_length=20,
        unique=True,
        validators=[MaxLengthValidator(12)],
        help_text="Public id such as PAT-0001 (at most 12 characters: donors type it as a paybill account)",
    )
    name = models.CharField(max_length=200)
    story = models.TextField(blank=True)
    condition = models.CharField(max_length=200, blank=True)
    treatment = models.CharField(max_length=200, blank=True)
    photo_url = models.URLField(blank=True)
    # When the patient (or their guardian) agreed to photos being shown to donors; empty: no photo in updates.
    photo_consent_at = models.DateTimeField(null=True, blank=True, verbose_name="photo consent recorded at")
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


# The fields of a partner that say where its payouts go, and the one of a patient that says which partner.
PARTNER_DESTINATION_FIELDS = ("payout_provider", "payout_msisdn", "payout_account_name")
PATIENT_DESTINATION_FIELDS = ("treatment_partner",)


class PayoutDestinationChange(models.Model):
    """A change to where payouts go, under maker-checker: a partner's wallet (provider, number, account name)
    or a patient's treatment partner. Nothing changes until a second person approves it; the row is the
    record of who asked, who decided, and the values before and after (`old`, `new`).

    An approved row whose `new` equals a partner's fields is what makes that destination usable for payouts.
    Rows are never edited after their decision and never deleted (PROTECT everywhere).
    """

    class Kind(models.TextChoices):
        PARTNER = "partner", "Partner's payout wallet"
        PATIENT = "patient", "Patient's treatment partner"

    class Status(models.TextChoices):
        REQUESTED = "requested", "Awaiting a second person"
        APPROVED = "approved", "Approved (applied)"
        REJECTED = "rejected", "Rejected"
        CANCELLED = "cancelled", "Cancelled"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    partner = models.ForeignKey(
        TreatmentPartner, null=True, blank=True, on_delete=models.PROTECT, related_name="destination_changes"
    )
    patient = models.ForeignKey(
        Patient, null=True, blank=True, on_delete=models.PROTECT, related_name="partner_changes"
    )
    # Partner: {"payout_provider", "payout_msisdn", "payout_account_name"} as strings. Patient:
    # {"treatment_partner": id or null, "treatment_partner_name": for reading the record later}.
    old = models.JSONField(default=dict)
    new = models.JSONField(default=dict)
    reason = models.CharField(max_length=255, blank=True, help_text="Why (from the requester)")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.REQUESTED, db_index=True)
    # Null only on rows recorded without a person: the migration (destinations set before approvals began),
    # demo data and tests (destination_seed).
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name="approved, rejected or cancelled by",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=255, blank=True, help_text="How it was recorded or decided")

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(kind="partner", partner__isnull=False, patient__isnull=True)
                    | models.Q(kind="patient", patient__isnull=False, partner__isnull=True)
                ),
                name="destination_change_one_target",
            ),
        ]
        permissions = [
            (
                "approve_destination_change",
                "Can approve or reject a change to where payouts go (the checker of maker-checker)",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.target_label} ({self.status})"

    @property
    def target_label(self) -> str:
        if self.kind == self.Kind.PARTNER:
            return f"partner #{self.partner_id} {self.partner.name if self.partner else ''}".strip()
        return f"patient {self.patient.code if self.patient else '?'}"


class TreatmentUpdate(models.Model):
    """News of a patient for the donors who funded them, under maker-checker: written by staff or by one of the
    treatment partner's members, published only when a second person approves it (patients/updates.py). On
    approval the donors are told once each (donor/updates.py); the public patient page shows approved ones."""

    class Kind(models.TextChoices):
        PRELIMINARY = "preliminary", "Preliminary (treatment started)"
        DELAY = "delay", "Delay"
        FINAL = "final", "Final (treatment done)"

    class Status(models.TextChoices):
        REQUESTED = "requested", "Awaiting a second person"
        APPROVED = "approved", "Approved (published and sent)"
        REJECTED = "rejected", "Rejected"

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="updates")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    text = models.TextField(max_length=2000)
    # Only when the patient's photo consent is recorded (treatment_update_write refuses it otherwise).
    photo_url = models.URLField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.REQUESTED, db_index=True)
    written_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    written_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        verbose_name="approved or rejected by",
    )  # fmt: skip
    decided_at = models.DateTimeField(null=True, blank=True, db_index=True)
    note = models.CharField(max_length=255, blank=True, help_text="Why it was rejected")

    class Meta:
        ordering = ["-written_at", "-id"]
        permissions = [
            ("approve_treatmentupdate", "Can approve or reject a treatment update (the checker of maker-checker)")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} update #{self.pk} for {self.patient.code if self.patient_id else '?'}"
