"""Wallet balances the providers report, kept for the close; a query that is never answered is alerted."""

from django.db import transaction
from django.utils import timezone

from finance.balances import parse_daraja_balance
from finance.models import BalanceQuery


def daraja_balance_result_record(*, conversation_id: str, result_code: str, value: str) -> BalanceQuery:
    """Daraja's Account Balance result (ResultParameters' `AccountBalance`) for the query it names. A failed
    result (code ≠ 0) is kept with no accounts. BalanceUnreadable when the text cannot be read."""
    accounts = parse_daraja_balance(value) if str(result_code) == "0" else {}
    with transaction.atomic():
        query = (
            BalanceQuery.objects.select_for_update().filter(provider="mpesa", conversation_id=conversation_id).first()
        ) or BalanceQuery(provider="mpesa", conversation_id=conversation_id)
        query.answered_at = timezone.now()
        query.result_code = str(result_code)[:20]
        query.raw = value
        query.accounts = {
            name: {
                "currency": a.currency,
                "available": str(a.available),
                "uncleared": str(a.uncleared),
                "reserved": str(a.reserved),
                "unreserved": str(a.unreserved),
            }
            for name, a in accounts.items()
        }
        query.save()
    return query
