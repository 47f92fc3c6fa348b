"""A statement of what the sandbox processed, so `make run` can show a whole month close.

The simulators answered every request our ledger made; this writes, in the generic CSV, the statement a provider
would send for it: each completed payment a credit, each paid payout and refund a debit, a fee per line, and the
opening and closing balances. `plant` adds one anomaly on request, to see it caught."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from finance.parsers import GENERIC_COLUMNS
from finance.services.close import month_bounds
from payments.models import Payment, Payout, Refund

PLANTS = ("none", "unknown-credit", "amount", "missing", "balance")
FEE_RATE = Decimal("0.01")
OPENING = Decimal("100000.00")


def sandbox_statement(provider: str, month: str, *, plant: str = "none") -> str:
    start, end = month_bounds(month)
    rows: list[list[object]] = []
    for payment in Payment.objects.filter(
        provider=provider, status=Payment.Status.SUCCEEDED, completed_at__gte=start, completed_at__lt=end
    ).order_by("completed_at"):
        rows.append(
            [
                payment.completed_at,
                payment.receipt or payment.provider_reference,
                "credit",
                payment.amount,
                payment.currency,
                payment.msisdn or payment.payer_reference,
            ]
        )
    for model in (Payout, Refund):
        for out in model.objects.filter(
            provider=provider, status=model.DONE, completed_at__gte=start, completed_at__lt=end
        ).order_by("completed_at"):
            rows.append(
                [
                    out.completed_at,
                    out.receipt or out.provider_reference,
                    "debit",
                    out.amount,
                    out.currency,
                    getattr(out, "msisdn", ""),
                ]
            )
    rows = [r for r in rows if r[1]]
    rows.sort(key=lambda r: r[0])
    currency = str(rows[0][4]) if rows else "KES"
    if plant == "missing" and rows:
        rows = [r for r in rows if r[2] != "credit"] + [r for r in rows if r[2] == "credit"][1:]
    if plant == "unknown-credit":
        rows.append([start + timedelta(days=1), "SANDBOX-UNKNOWN-1", "credit", Decimal("123.00"), currency, "unknown"])
    if plant == "amount" and rows:
        rows[0] = [*rows[0][:3], rows[0][3] + Decimal("1.00"), *rows[0][4:]]
    out = io.StringIO()
    fees = credits = debits = Decimal("0")
    lines = []
    for occurred, reference, kind, amount, line_currency, counterparty in rows:
        fee = (Decimal(str(amount)) * FEE_RATE).quantize(Decimal("0.01"))
        fees += fee
        credits += amount if kind == "credit" else 0
        debits += amount if kind == "debit" else 0
        lines.append(
            [
                timezone.localtime(occurred).isoformat(),
                reference,
                kind,
                amount,
                fee,
                line_currency,
                f"{provider}-sandbox",
                counterparty,
            ]
        )
    closing = OPENING + credits - debits - fees + (Decimal("10.00") if plant == "balance" else 0)
    out.write(f"# opening_balance: {OPENING}\n# closing_balance: {closing}\n# currency: {currency}\n")
    out.write(f"# period_start: {start.isoformat()}\n# period_end: {(end - timedelta(seconds=1)).isoformat()}\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(GENERIC_COLUMNS)
    writer.writerows(lines)
    return out.getvalue()
