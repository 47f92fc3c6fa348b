"""What money did and what the providers said: payments and their timeline, the raw callback inbox, payouts
and refunds, the ledger checks and the audit trail. Rows here are evidence: the timeline and the inbox are
append-only and the admin deletes none. The rules that change them live in payments/services/."""

from typing import Any

from django.conf import settings
from django.db import models

from donor.models import Donation
from patients.models import MONEY


def fit(model: type[models.Model], field: str, value: object) -> str:
    """A provider's text cut to the column it goes into. MySQL's strict mode refuses an over-long value (and
    SQLite silently keeps it), so every value a provider sends is fitted before it is stored."""
    text = "" if value is None else str(value)
    limit = getattr(model._meta.get_field(field), "max_length", None)
    return text[:limit] if limit else text


class Payment(models.Model):
    """One attempt to collect a donation through one provider."""

    class Status(models.TextChoices):
        CREATED = "created"
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"
        EXPIRED = "expired"

    TERMINAL = {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.EXPIRED}

    donation = models.ForeignKey(Donation, on_delete=models.PROTECT, related_name="payments")
    # Our id for this attempt, sent as externalId/utilityref/AccountReference; equal to the donation's
    # reference for the first attempt.
    reference = models.CharField(max_length=64, unique=True)
    # What the provider was actually sent as our id (a provider may cap its length); callbacks echo it.
    external_id = models.CharField(max_length=64, blank=True, db_index=True)
    provider = models.CharField(max_length=20, db_index=True)
    channel = models.CharField(max_length=20, blank=True, help_text="Mpesa, Airtel, Tigo, card, bank, …")
    msisdn = models.CharField(max_length=15, blank=True, help_text="E.164 digits without +")
    # How the provider identifies the payer when it is not a phone number: since July 2024 Safaricom's C2B
    # confirmations carry a 64-character hex hash of the number in MSISDN (older ones a masked "2547 ***** 126").
    payer_reference = models.CharField(max_length=128, blank=True)
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CREATED, db_index=True)
    provider_reference = models.CharField(max_length=100, null=True, blank=True)
    receipt = models.CharField(max_length=100, blank=True)
    failure_reason = models.CharField(max_length=255, blank=True)
    # HMAC of the secret in the callback URL we gave the provider (payments/url_tokens.py); never the token.
    callback_token_digest = models.CharField(max_length=64, unique=True, null=True, blank=True, editable=False)
    checkout_url = models.URLField(max_length=1000, blank=True)
    # A verified success that arrived after we had marked the attempt failed/expired, or a conflict.
    needs_review = models.BooleanField(default=False, db_index=True)
    # Reconciliation ladder (30 s, 2 min, 10 min, 1 h, 6 h, 24 h).
    next_check_at = models.DateTimeField(null=True, blank=True, db_index=True)
    check_count = models.PositiveSmallIntegerField(default=0)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_reference"], name="payment_provider_reference_unique"
            ),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="payment_amount_positive"),
        ]
        permissions = [("check_payment", "Can ask the provider about a payment now")]

    def __str__(self) -> str:
        return f"{self.reference} ({self.provider} {self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    # Set by payment_start on the object it returns: the charge request may have reached the provider (it
    # timed out after sending), so the outcome is unknown. Not stored: the payment is simply pending.
    start_outcome_unknown: bool = False


class CallbackEvent(models.Model):
    """The raw inbox: every callback delivery, stored before we trust it (after dj-stripe)."""

    class Status(models.TextChoices):
        RECEIVED = "received"
        PROCESSED = "processed"
        DUPLICATE = "duplicate"
        IGNORED = "ignored"
        REJECTED = "rejected"
        FAILED = "failed"
        REVIEW = "review"
        DEAD = "dead"  # failed too many times: parked for a person; the watchdog alerts

    # A delivery is settled only here; `received` and `failed` are work still to do (the sweeper re-runs them).
    SETTLED = {Status.PROCESSED, Status.DUPLICATE, Status.IGNORED, Status.REJECTED, Status.REVIEW, Status.DEAD}

    provider = models.CharField(max_length=20, db_index=True)
    kind = models.CharField(max_length=30, default="payment")
    body = models.TextField(help_text="Raw body with secrets redacted; empty when not kept (body_kept)")
    # A delivery judged forged on its bytes, or over the rate limit with nothing a person or the sweeper could
    # use, keeps only a fixed-size record (digest, size, client, verdict): anyone can send 64 KiB bodies.
    body_kept = models.BooleanField(default=True)
    body_size = models.PositiveIntegerField(default=0, help_text="Bytes of the raw body as it arrived")
    headers = models.JSONField(default=dict)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    # HMAC-SHA256 of the raw bytes, keyed (payments/url_tokens.py): a plain hash would let someone with the
    # database guess the secrets that were redacted from the stored body.
    body_digest = models.CharField(max_length=64, db_index=True)
    # provider:kind:body_digest; NULL on the rows that repeat an earlier delivery.
    dedup_key = models.CharField(max_length=120, unique=True, null=True, blank=True)
    duplicate_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    url_token_digest = models.CharField(
        max_length=64, blank=True, help_text="HMAC of the secret path segment it arrived on (never the token)"
    )
    # The verdict on the raw bytes (trusted / unverified / rejected), kept because the stored body is
    # redacted: a replay reuses it instead of re-checking a password that is no longer there.
    trust = models.CharField(max_length=12, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RECEIVED, db_index=True)
    error = models.TextField(blank=True)
    # Why the last attempt crashed (the handler's traceback, as dj-stripe keeps one): shown in the admin.
    traceback = models.TextField(blank=True, help_text="The traceback of the last attempt that failed")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Processing attempts so far")
    # When the sweeper should run it (again) if it is still received/failed; exponential backoff on failure.
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    payment = models.ForeignKey(
        Payment, null=True, blank=True, on_delete=models.SET_NULL, related_name="callback_events"
    )
    our_reference = models.CharField(max_length=64, blank=True, db_index=True)
    provider_reference = models.CharField(max_length=100, blank=True, db_index=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        permissions = [
            ("replay_callbackevent", "Can replay stored callbacks"),
            ("accept_held_callbackevent", "Can credit a held paybill confirmation after checking the statement"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.provider}/{self.kind} {self.status}"

    @property
    def is_settled(self) -> bool:
        return self.status in self.SETTLED


class CallbackRefusal(models.Model):
    """How many deliveries one client had refused on a day (forged on their bytes, or over the rate limit) and
    how many bytes they sent: the per-client count behind the fixed-size records of refused deliveries. Past
    CALLBACK_REFUSED_RECORDS_PER_CLIENT records a day, only this count grows: what an unauthenticated sender can
    make us store stays bounded."""

    provider = models.CharField(max_length=20)
    client_ip = models.CharField(max_length=45, blank=True)  # "" when unknown
    day = models.DateField()
    count = models.PositiveIntegerField(default=0)
    bytes = models.PositiveBigIntegerField(default=0)
    last_verdict = models.CharField(max_length=30, blank=True)
    last_at = models.DateTimeField()

    class Meta:
        ordering = ["-day", "-count"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "client_ip", "day"], name="callback_refusal_per_client_day")
        ]

    def __str__(self) -> str:
        return f"{self.client_ip or '?'} {self.provider} {self.day}: {self.count} refused"


class IdempotencyRecord(models.Model):
    """The first answer to a donation request carrying an Idempotency-Key."""

    key = models.CharField(max_length=255, unique=True)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    # The first request's lease on the key; after it a retry may take over (the first crashed or was killed).
    locked_until = models.DateTimeField(null=True, blank=True)
    # The donation the first request created, so that a retry resumes it instead of charging again.
    donation_reference = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.key


class MoneyOut(models.Model):
    """Money we send out: a payout to a treatment partner or a refund to a donor, on one lifecycle
    (payments/services/money_out.py) under maker-checker.

    One staff user requests it, a different one with the approve permission approves it; only then is the
    provider asked, once, with ids we chose and stored before the request left. Its result (callback, status
    query or the request's own answer, as the rail allows) makes it paid/refunded or failed. A request that
    timed out after sending is `ambiguous`: never re-sent, settled by a later result or by a person.
    """

    class Status(models.TextChoices):
        REQUESTED = "requested", "Requested (awaiting approval)"
        SENDING = "sending", "Approved, sending"
        SENT = "sent", "Sent, awaiting result"
        AMBIGUOUS = "ambiguous", "Ambiguous (check with the provider)"
        PAID = "paid", "Paid"
        REFUNDED = "refunded", "Refunded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled before sending"

    # Whatever may still hold (or has taken) the money; what a provider's result may settle.
    AWAITING_RESULT = (Status.SENDING, Status.SENT, Status.AMBIGUOUS)
    DONE: Status  # paid (payout) or refunded (refund)

    # Our id: B2C's OriginatorConversationID, the externalId MTN echoes; a result names it where it can.
    reference = models.CharField(max_length=64, unique=True)
    provider = models.CharField(max_length=20)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.REQUESTED, db_index=True)
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="%(class)ss_requested"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="%(class)ss_approved"
    )
    # The provider's id: chosen by us and stored before sending where the rail lets us (MTN's X-Reference-Id,
    # Airtel's transaction id), else learnt from its answer (Daraja's ConversationID).
    provider_reference = models.CharField(max_length=100, null=True, blank=True)
    receipt = models.CharField(max_length=100, blank=True)
    result_code = models.CharField(max_length=40, blank=True)
    result_desc = models.CharField(max_length=255, blank=True)
    needs_review = models.BooleanField(default=False, db_index=True)
    # When reconciliation next asks a provider with a status query about it.
    next_check_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.reference} ({self.status})"


def _money_out_rules(name: str) -> list[models.BaseConstraint]:
    return [
        models.CheckConstraint(condition=models.Q(amount__gt=0), name=f"{name}_amount_positive"),
        models.UniqueConstraint(fields=["provider", "provider_reference"], name=f"{name}_provider_reference_unique"),
    ]


def _money_out_powers(name: str) -> list[tuple[str, Any]]:
    return [
        (f"approve_{name}", f"Can approve and send {name}s (the checker of maker-checker)"),
        (f"resolve_{name}", f"Can settle an ambiguous or stuck {name} by hand"),
    ]


def _status_field(leave_out: str) -> models.CharField:
    choices = [choice for choice in MoneyOut.Status.choices if choice[0] != leave_out]
    return models.CharField(max_length=20, choices=choices, default=MoneyOut.Status.REQUESTED, db_index=True)


class Payout(MoneyOut):
    """Money sent to a patient's treatment partner's wallet (M-Pesa B2C, MTN and Airtel disbursements)."""

    DONE = MoneyOut.Status.PAID

    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT, related_name="payouts")
    treatment_partner = models.ForeignKey("patients.TreatmentPartner", on_delete=models.PROTECT, related_name="payouts")
    provider = models.CharField(max_length=20, default="mpesa")
    msisdn = models.CharField(max_length=15, help_text="The partner's wallet, E.164 digits without +")
    status = _status_field(MoneyOut.Status.REFUNDED)

    class Meta(MoneyOut.Meta):
        constraints = _money_out_rules("payout")
        permissions = _money_out_powers("payout")


class Refund(MoneyOut):
    """Money of a completed donation given back to its payer. Providers without a refund API (AzamPay) are
    refunded outside it and recorded here by hand (`manual`), through the same two people."""

    DONE = MoneyOut.Status.REFUNDED
    # Refunds that hold (or may hold) the donation's money: at most one per donation.
    LIVE = (MoneyOut.Status.REQUESTED, *MoneyOut.AWAITING_RESULT, MoneyOut.Status.REFUNDED)

    donation = models.ForeignKey(Donation, on_delete=models.PROTECT, related_name="refunds")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    reason = models.CharField(max_length=255, blank=True)
    manual = models.BooleanField(default=False, help_text="Paid back outside the provider's API, recorded by hand")
    status = _status_field(MoneyOut.Status.PAID)

    class Meta(MoneyOut.Meta):
        constraints = _money_out_rules("refund")
        permissions = _money_out_powers("refund")


class LedgerCheck(models.Model):
    """The last runs of `verify_ledger`: what the dashboard shows as the book's health."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    ok = models.BooleanField()
    problems = models.PositiveIntegerField(default=0)
    report = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {'OK' if self.ok else f'{self.problems} problem(s)'}"


class PaymentHistory(models.Model):
    """What happened to a payment, in order: the payment's timeline (append-only evidence).

    One row per request to the provider and its answer, per status query and its answer, per state change
    with its cause. Callback deliveries are the inbox's rows (CallbackEvent); the timeline merges both.
    """

    class Kind(models.TextChoices):
        START = "start", "Charge requested"
        STATUS_QUERY = "status_query", "Status query"
        TRANSITION = "transition", "State change"

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="history")
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    summary = models.CharField(max_length=255)
    # For a state change: what caused it ("callback #12", "status query", "expiry", "paybill TL4…").
    cause = models.CharField(max_length=120, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.payment_id} {self.kind}: {self.summary}"


class AuditEntry(models.Model):
    """Who did what to money, by hand: approvals, sends, resolutions, replays, checks (append-only)."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=40, db_index=True)  # "payout.approve", "callback.replay", …
    target = models.CharField(max_length=80, db_index=True)  # "payout RHCI-PO-…", "payment RHCI-DN-…"
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.target}"


class SchedulerLease(models.Model):
    """Who runs a scheduled job now (`reconcile_payments --loop` and the jobs it drives): one row per job, held
    until `expires_at` and renewed each cycle, so two schedulers on two hosts never run the same cycle."""

    name = models.CharField(max_length=60, primary_key=True)
    holder = models.CharField(max_length=120)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name}: {self.holder} until {self.expires_at:%Y-%m-%d %H:%M:%S}"


class QueuedFlag(models.Model):
    """ "A task of this kind is waiting to run" (payments/services/coalesce.py): set with a compare-and-set by whoever
    enqueues it, cleared by the task as its first step, so a storm of deliveries queues one drain, not one each."""

    name = models.CharField(max_length=40, primary_key=True)
    queued_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name}: {'queued at ' + f'{self.queued_at:%H:%M:%S}' if self.queued_at else 'clear'}"
