"""The month close's records: imported provider statements, their lines, the balances the provider reported,
and the exceptions a person works to an end.

A statement line is never a credit: it is what the provider says happened. Nothing here changes the ledger
(payments' Payment, Payout, Refund); an exception is settled by linking, holding or writing it off.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models

from patients.models import MONEY


class Statement(models.Model):
    """One imported provider export (file or API pull), with the period and balances it states."""

    provider = models.CharField(max_length=20, db_index=True)
    source = models.CharField(max_length=20, default="file", help_text="file, upload or pull")
    filename = models.CharField(max_length=255, blank=True)
    # SHA-256 of the exact bytes: the same file imported again is refused as already imported.
    digest = models.CharField(max_length=64)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField(help_text="The last moment the statement covers")
    currency = models.CharField(max_length=3)
    opening_balance = models.DecimalField(**MONEY, null=True, blank=True)
    closing_balance = models.DecimalField(**MONEY, null=True, blank=True)
    # The file's own totals, over every line it holds (also those already imported from an overlapping
    # file): the balance equation of this period is proven with them.
    credits = models.DecimalField(**MONEY, default=0)
    debits = models.DecimalField(**MONEY, default=0)
    fees = models.DecimalField(**MONEY, default=0)
    line_count = models.PositiveIntegerField(default=0)
    new_lines = models.PositiveIntegerField(default=0)
    duplicate_lines = models.PositiveIntegerField(default=0)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    imported_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-period_start", "-id"]
        constraints = [models.UniqueConstraint(fields=["provider", "digest"], name="statement_file_once")]

    def __str__(self) -> str:
        return (
            f"{self.provider} {self.period_start:%Y-%m-%d}–{self.period_end:%Y-%m-%d} ({self.filename or self.source})"
        )


class StatementLine(models.Model):
    class Kind(models.TextChoices):
        CREDIT = "credit"
        DEBIT = "debit"
        FEE = "fee"

    statement = models.ForeignKey(Statement, on_delete=models.PROTECT, related_name="lines")
    provider = models.CharField(max_length=20)
    line_number = models.PositiveIntegerField(help_text="In the file it was first imported from")
    # provider + kind + provider_reference: one line per provider transaction, however many files show it.
    line_key = models.CharField(max_length=160)
    occurred_at = models.DateTimeField(db_index=True)
    provider_reference = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    amount = models.DecimalField(**MONEY)
    fee = models.DecimalField(**MONEY, default=0)
    currency = models.CharField(max_length=3)
    account = models.CharField(max_length=100, blank=True)
    counterparty = models.CharField(max_length=128, blank=True)
    status = models.CharField(max_length=40, blank=True, help_text="The provider's status, when the export has one")

    class Meta:
        ordering = ["occurred_at", "id"]
        constraints = [models.UniqueConstraint(fields=["provider", "line_key"], name="statement_line_once")]
        indexes = [models.Index(fields=["provider", "provider_reference"])]

    def __str__(self) -> str:
        return f"{self.provider} {self.kind} {self.provider_reference} {self.amount} {self.currency}"

    @property
    def fee_total(self) -> Decimal:
        """What this line costs in fees: its fee column, and the whole amount of a fee line."""
        return self.fee + (self.amount if self.kind == self.Kind.FEE else 0)


class BalanceQuery(models.Model):
    """A wallet balance asked of a provider (Daraja Account Balance is asynchronous: the answer comes later at
    our result URL). One that never answers expires after FINANCE_BALANCE_RESULT_TIMEOUT_MINUTES and is alerted
    by the watchdog, never waited on."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for the result"
        ANSWERED = "answered"
        FAILED = "failed", "Refused or failed"
        EXPIRED = "expired", "No result in time"

    provider = models.CharField(max_length=20)
    account = models.CharField(max_length=40, blank=True, help_text="What was asked: shortcode, collection, …")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    conversation_id = models.CharField(max_length=100, blank=True, db_index=True)
    requested_at = models.DateTimeField(auto_now_add=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    result_code = models.CharField(max_length=20, blank=True)
    message = models.CharField(max_length=255, blank=True, help_text="The provider's words, or why it failed")
    raw = models.TextField(blank=True, help_text="The provider's balance text as it arrived")
    accounts = models.JSONField(default=dict, blank=True, help_text="Parsed: account -> figures (as strings)")

    class Meta:
        ordering = ["-requested_at", "-id"]
        verbose_name_plural = "balance queries"

    def __str__(self) -> str:
        return f"{self.provider} balance {self.requested_at:%Y-%m-%d %H:%M}"


class Discrepancy(models.Model):
    """An exception of the close: something the statement and the ledger disagree about, until a person has
    settled it. `key` makes every finding once: running the match again finds it, never adds it twice."""

    class Kind(models.TextChoices):
        MISMATCH = "mismatch", "Mismatched (same reference, different amount, currency or status)"
        STATEMENT_ONLY = "statement_only", "On the statement only"
        LEDGER_ONLY = "ledger_only", "In the ledger only (past the grace period)"
        BALANCE = "balance", "Balance does not add up"

    class Status(models.TextChoices):
        OPEN = "open"
        HELD = "held", "Held (being looked into)"
        WRITE_OFF_REQUESTED = "write_off_requested", "Write-off requested (awaiting a second person)"
        ATTACHED = "attached", "Attached to a payment"
        CLEARED = "cleared", "Cleared (a later import or the ledger now agrees)"
        WRITTEN_OFF = "written_off", "Written off"

    OPEN_STATUSES = (Status.OPEN, Status.HELD, Status.WRITE_OFF_REQUESTED)

    key = models.CharField(max_length=200, unique=True)
    provider = models.CharField(max_length=20, db_index=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN, db_index=True)
    month = models.CharField(max_length=7, db_index=True, help_text="YYYY-MM of the close that found it")
    line = models.ForeignKey(StatementLine, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    statement = models.ForeignKey(Statement, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    payment = models.ForeignKey("payments.Payment", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    payout = models.ForeignKey("payments.Payout", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    refund = models.ForeignKey("payments.Refund", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # The figures on each side, as found: "statement 1500.00 KES succeeded / ledger 1000.00 KES succeeded".
    detail = models.CharField(max_length=500)
    expected = models.DecimalField(**MONEY, null=True, blank=True)
    actual = models.DecimalField(**MONEY, null=True, blank=True)
    reason = models.CharField(max_length=255, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    found_at = models.DateTimeField(auto_now_add=True, db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-found_at", "-id"]
        verbose_name = "exception"
        verbose_name_plural = "exceptions"
        permissions = [
            ("work_discrepancy", "Can attach, hold or ask to write off a month-close exception"),
            ("approve_writeoff", "Can approve a write-off (the checker: never the one who asked)"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.detail[:80]}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES


class BalanceReading(models.Model):
    """One account's balance as the provider stated it, kept as evidence: the close holds an imported
    statement's closing balance against the reading nearest the statement's end."""

    query = models.ForeignKey(BalanceQuery, on_delete=models.PROTECT, related_name="readings")
    provider = models.CharField(max_length=20)
    account = models.CharField(max_length=100, help_text="Utility Account, collection, wallet, …")
    currency = models.CharField(max_length=3)
    available = models.DecimalField(**MONEY)
    uncleared = models.DecimalField(**MONEY, null=True, blank=True)
    reserved = models.DecimalField(**MONEY, null=True, blank=True)
    asked_at = models.DateTimeField()
    answered_at = models.DateTimeField()
    as_of = models.DateTimeField(db_index=True, help_text="When the balance held (the provider's time, if given)")
    raw = models.TextField(blank=True, help_text="The provider's answer as it arrived")

    class Meta:
        ordering = ["-as_of", "-id"]
        constraints = [models.UniqueConstraint(fields=["query", "account"], name="balance_reading_once")]
        indexes = [models.Index(fields=["provider", "as_of"])]

    def __str__(self) -> str:
        return f"{self.provider} {self.account} {self.available} {self.currency} at {self.as_of:%Y-%m-%d %H:%M}"
