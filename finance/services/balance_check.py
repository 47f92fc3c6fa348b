"""An imported statement's closing balance held against what the provider's own balance query said: the
reading (finance.models.BalanceReading) of the statement's account nearest the statement's end, within
FINANCE_BALANCE_READING_WINDOW_HOURS. The lines imported between the two moments move the balance, so the
reading is expected to be closing ± their sum; a difference is a balance exception of the close."""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings

from finance.models import BalanceReading, Statement, StatementLine

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class ReadingCheck:
    statement: Statement
    reading: BalanceReading
    expected: Decimal  # the statement's closing, moved by the lines between its end and the reading
    movement: Decimal

    @property
    def difference(self) -> Decimal:
        return self.reading.available - self.expected

    def text(self) -> str:
        return (
            f"closing {self.statement.closing_balance} at {self.statement.period_end:%Y-%m-%d %H:%M} UTC"
            f"{f' moved by {self.movement}' if self.movement else ''} = {self.expected}; the provider's "
            f"{self.reading.account} read {self.reading.available} {self.reading.currency} at "
            f"{self.reading.as_of:%Y-%m-%d %H:%M} UTC"
            + ("" if not self.difference else f" (difference {self.difference})")
        )


def balance_reading_check(statement: Statement) -> ReadingCheck | None:
    """None when the statement has no closing balance, its provider's account is not named in
    FINANCE_BALANCE_ACCOUNTS, or no reading lies within the window."""
    account = settings.FINANCE_BALANCE_ACCOUNTS.get(statement.provider)
    if statement.closing_balance is None or not account:
        return None
    end = statement.period_end
    window = timedelta(hours=settings.FINANCE_BALANCE_READING_WINDOW_HOURS)
    readings = BalanceReading.objects.filter(
        provider=statement.provider,
        account=account,
        currency=statement.currency,
        as_of__gte=end - window,
        as_of__lte=end + window,
    )
    nearest = min(readings, key=lambda r: (abs(r.as_of - end), -r.pk), default=None)
    if nearest is None:
        return None
    low, high = sorted((end, nearest.as_of))
    between = StatementLine.objects.filter(
        provider=statement.provider, currency=statement.currency, occurred_at__gt=low, occurred_at__lte=high
    )
    movement = sum(
        (line.amount if line.kind == StatementLine.Kind.CREDIT else -line.amount if line.kind == "debit" else ZERO)
        - line.fee_total
        for line in between
    )
    movement = Decimal(movement)
    expected = statement.closing_balance + (movement if nearest.as_of > end else -movement)
    return ReadingCheck(statement, nearest, expected, movement)
