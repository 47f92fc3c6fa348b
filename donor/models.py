"""Donors, their donations, the append-only allocation ledger and the notification outbox. A donation's
public token, not its id or reference, is what a URL shows, so nobody reads another donor's donation by guessing."""

import secrets
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import translation

from donor.phone_numbers import mask_msisdn
from patients.models import MONEY, Patient, TreatmentUpdate

# The languages donors are written to in (receipts, statements): the site's donor-facing text has these two.
DONOR_LANGUAGES = [("en", "English"), ("sw", "Kiswahili")]


def active_language() -> str:
    """A new donor's language: the one the request that creates them is answered in (LocaleMiddleware's choice),
    if it is one of DONOR_LANGUAGES, else English."""
    code = (translation.get_language() or settings.LANGUAGE_CODE).split("-")[0]
    return code if code in dict(DONOR_LANGUAGES) else "en"


class Donor(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="donor"
    )
    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True, db_index=True)
    phone = models.CharField(max_length=15, blank=True, db_index=True, help_text="E.164 digits without +")
    telegram_chat_id = models.CharField(max_length=32, blank=True)
    language = models.CharField(max_length=10, default=active_language, choices=DONOR_LANGUAGES)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name or self.email or f"Donor {self.pk}"


PUBLIC_TOKEN_BYTES = 24  # 192 bits: a donation's link cannot be guessed, unlike its sequential reference


def new_public_token() -> str:
    """The donor's handle on a donation (status page and API, receipt links): 32 URL-safe characters."""
    return secrets.token_urlsafe(PUBLIC_TOKEN_BYTES)


class Donation(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"
        EXPIRED = "expired"
        REFUNDED = "refunded"

    TERMINAL = {Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.EXPIRED, Status.REFUNDED}

    # Set right after insert: {PREFIX}-DN-{id}-{YYYYMMDDHHMMSS}. It is the externalId providers echo back.
    reference = models.CharField(max_length=64, unique=True)
    # The public handle: whoever holds it is the donor for reading the donation (its link). The reference stays
    # for providers and staff; by reference only the donor's own account (or session) and staff may read it.
    public_token = models.CharField(max_length=64, unique=True, default=new_public_token, editable=False)
    donor = models.ForeignKey(Donor, null=True, blank=True, on_delete=models.PROTECT, related_name="donations")
    patient = models.ForeignKey(
        Patient,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="donations",
        help_text="Empty means the general fund",
    )
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    status_reason = models.CharField(max_length=255, blank=True)
    anonymous = models.BooleanField(default=False)
    message = models.TextField(blank=True, max_length=1000)
    # A verified payment arrived after we had given up on it: the money moved, so it is credited, but a
    # person should look at it.
    needs_review = models.BooleanField(default=False, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=models.Q(amount__gt=0), name="donation_amount_positive")]

    def __str__(self) -> str:
        return self.reference

    @property
    def donor_display_name(self) -> str:
        if self.anonymous or not self.donor or not self.donor.name:
            return "Anonymous"
        return self.donor.name


class Allocation(models.Model):
    """The funding ledger: where each completed donation's money went. Append-only: a refund never edits a
    row, it adds a reversing one (a negative amount, entry `reversal`) for the same donation and target."""

    GENERAL_FUND = "general_fund"

    class Entry(models.TextChoices):
        CREDIT = "credit"
        REVERSAL = "reversal"  # a refund gave (part of) the money back

    donation = models.ForeignKey(Donation, on_delete=models.PROTECT, related_name="allocations")
    patient = models.ForeignKey(Patient, null=True, blank=True, on_delete=models.PROTECT, related_name="allocations")
    # "patient:<id>" or "general_fund": a non-null key so the unique constraint also holds for the fund.
    target = models.CharField(max_length=40)
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    entry = models.CharField(max_length=10, choices=Entry.choices, default=Entry.CREDIT)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Credited once and reversed at most once per donation and target: the ledger's last line of
            # defence against a double credit or a double refund.
            models.UniqueConstraint(
                fields=["donation", "target", "entry"], name="allocation_once_per_donation_target_entry"
            ),
            models.CheckConstraint(
                condition=models.Q(entry="credit", amount__gt=Decimal("0"))
                | models.Q(entry="reversal", amount__lt=Decimal("0")),
                name="allocation_credit_positive_reversal_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.donation_id} → {self.target}: {self.amount} {self.currency}"

    @staticmethod
    def target_for(patient: Patient | None) -> str:
        return f"patient:{patient.pk}" if patient else Allocation.GENERAL_FUND


class Notice(models.Model):
    """The outbox: one message to send about a donation (a receipt, a refund notice, the operators' notice), per
    channel, recorded in the same transaction as the change it tells of and sent by the relay
    (donor/notifications.py) with retries. `key` makes it once per donation, kind and channel, however often the
    callback behind it is replayed."""

    class Channel(models.TextChoices):
        EMAIL = "email"
        TELEGRAM = "telegram"  # the donor's linked chat
        OPERATORS = "operators"  # ADMIN_CHAT_ID on Telegram
        SMS = "sms"  # the phone that paid (SmsMessage keeps the gateway's side)

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        DEAD = "dead", "Dead (gave up after repeated failures)"

    key = models.CharField(max_length=120, unique=True)
    # For a treatment update: the donor's latest gift to the patient (the one that made them a recipient).
    donation = models.ForeignKey(Donation, on_delete=models.PROTECT, related_name="notices")
    kind = models.CharField(max_length=20)  # receipt | refund | outcome | update
    # Set on kind "update": the news it carries (one row per update, recipient and channel: its key).
    treatment_update = models.ForeignKey(
        TreatmentUpdate, null=True, blank=True, on_delete=models.PROTECT, related_name="notices"
    )
    channel = models.CharField(max_length=20, choices=Channel.choices)
    recipient = models.CharField(max_length=254)
    rail = models.CharField(max_length=60, blank=True, help_text="How it was paid, as the receipt names it")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    last_error = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} by {self.channel} for {self.donation_id} ({self.status})"


class TokenEpoch(models.Model):
    """How many times every API token of an account was revoked at once (a logout, a password change).

    Each JWT carries the account's epoch of the moment it was issued (`donor.tokens.EPOCH_CLAIM`); a token whose
    epoch is behind is refused, access and refresh tokens alike, long before they expire. A counter rather than a
    time: a token issued in the same second as a logout is on the right side of it either way."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="token_epoch"
    )
    epoch = models.PositiveIntegerField(default=0)
    revoked_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=40, blank=True)

    def __str__(self) -> str:
        return f"{self.user_id}: epoch {self.epoch}"


class SmsMessage(models.Model):
    """One SMS we sent (or tried to), by its once-only key: a receipt's outbox row, a pledge's reminder. The
    gateway's message id lets a delivery report find it. `msisdn` is needed to send; shown masked everywhere."""

    class Status(models.TextChoices):
        QUEUED = "queued"  # recorded, not handed to the gateway yet (or a retryable failure)
        SENT = "sent"
        DELIVERED = "delivered"
        FAILED = "failed"
        UNKNOWN = "unknown", "Unknown (the gateway did not answer; not sent again)"
        OPTED_OUT = "opted_out", "Not sent (the number opted out)"

    key = models.CharField(max_length=120, unique=True)
    msisdn = models.CharField(max_length=15, help_text="E.164 digits without +")
    text = models.CharField(max_length=480)
    gateway = models.CharField(max_length=20)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    gateway_message_id = models.CharField(max_length=100, blank=True, db_index=True)
    reason = models.CharField(max_length=160, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"SMS {self.key} to {mask_msisdn(self.msisdn)} ({self.status})"


class SmsOptOut(models.Model):
    """A number that reported it refuses our messages (blacklisted, do-not-disturb): never sent to again."""

    msisdn = models.CharField(max_length=15, unique=True, help_text="E.164 digits without +")
    reason = models.CharField(max_length=160, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{mask_msisdn(self.msisdn)} opted out"


class NoticeSubscription(models.Model):
    """Whether an address wants treatment updates on a channel: an unsubscribe (a signed link, or the mail
    client's one-click List-Unsubscribe) or an SMS opt-in. Keyed by channel and address, not by Donor row: a guest
    who gave three times is three Donor rows with one email, and one "stop" must cover them all.

    No row: email and a linked Telegram chat get updates (the donor gave us those to hear from us), SMS does not
    (it costs the donor's attention and our credit: only with an opt-in row)."""

    channel = models.CharField(max_length=20, choices=Notice.Channel.choices)
    address = models.CharField(max_length=254, help_text="Email (lower case), Telegram chat id or E.164 digits")
    subscribed = models.BooleanField()
    changed_at = models.DateTimeField(auto_now=True)
    source = models.CharField(max_length=40, blank=True, help_text="link, one-click, staff")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["channel", "address"], name="notice_subscription_once")]

    def __str__(self) -> str:
        shown = mask_msisdn(self.address) if self.channel == Notice.Channel.SMS else self.address
        return f"{self.channel} {shown}: {'subscribed' if self.subscribed else 'unsubscribed'}"
