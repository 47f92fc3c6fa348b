"""Wallet balances the providers report, kept for the close (BalanceReading): asked by `balance_query`
(MTN and Airtel answer at once; Daraja's Account Balance answers later at our secret result URL, recorded by
`balance_result_record`), and a query never answered expires after FINANCE_BALANCE_RESULT_TIMEOUT_MINUTES
(`balance_queries_expire`) and is alerted, never waited on."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from finance.balances import parse_daraja_balance
from finance.models import BalanceQuery, BalanceReading
from payments.callback_urls import callback_url
from payments.models import fit
from payments.providers.base import BalanceResult, CallbackRole, ProviderError, WalletBalance, WalletBalances
from payments.providers.registry import get_capable, get_provider, provider_codes


def balance_providers() -> list[str]:
    """The configured providers that can be asked for a balance."""
    return [code for code in provider_codes() if isinstance(get_provider(code), WalletBalances)]


def balance_query(*, provider: str, account: str = "") -> list[BalanceQuery]:
    """Ask `provider` for the balance of `account` (every account it has when ""), one query each. The query
    row is stored before the request, so one whose answer is lost still expires and is alerted."""
    adapter = get_capable(provider, WalletBalances)
    accounts = [account] if account else list(adapter.balance_accounts)
    unknown = [a for a in accounts if a not in adapter.balance_accounts]
    if unknown:
        raise ProviderError(
            f"{provider} has no balance account {unknown[0]!r}: one of {', '.join(adapter.balance_accounts)}"
        )
    return [_ask(adapter, provider, name) for name in accounts]


def _ask(adapter: WalletBalances, provider: str, account: str) -> BalanceQuery:
    urls = {}
    if adapter.balance_is_asynchronous:
        routed = type(adapter)  # the provider's class declares its routes
        result = routed.route_for(CallbackRole.BALANCE_RESULT)  # type: ignore[attr-defined]
        secret = adapter.callback_secret(result.kind) or ""  # type: ignore[attr-defined]
        if not secret:  # a result at the bare URL is never believed: asking would only wait for nothing
            raise ProviderError(f"{provider}'s balance result URL needs its secret (MPESA_B2C_TOKEN)")
        urls = {
            "result_url": callback_url(routed, CallbackRole.BALANCE_RESULT, secret),  # type: ignore[arg-type]
            "timeout_url": callback_url(routed, CallbackRole.BALANCE_TIMEOUT, secret),  # type: ignore[arg-type]
        }
    query = BalanceQuery.objects.create(provider=provider, account=account)
    try:
        answer = adapter.request_balance(account=account, **urls)
    except ProviderError as exc:
        query.status, query.answered_at, query.message = (
            BalanceQuery.Status.FAILED,
            timezone.now(),
            fit(BalanceQuery, "message", str(exc)),
        )
        query.save(update_fields=["status", "answered_at", "message"])
        raise
    query.conversation_id = answer.conversation_id[:100]
    query.message = fit(BalanceQuery, "message", answer.message)
    query.raw = answer.raw
    if answer.readings:
        query.status, query.answered_at = BalanceQuery.Status.ANSWERED, timezone.now()
        _keep(query, answer.readings, as_of=query.answered_at)
    query.save()
    return query


def _keep(query: BalanceQuery, readings: tuple[WalletBalance, ...], *, as_of: datetime) -> None:
    assert query.answered_at is not None
    query.accounts = {r.account: {"currency": r.currency, "available": str(r.available)} for r in readings}
    for reading in readings:
        try:
            with transaction.atomic():
                BalanceReading.objects.create(
                    query=query,
                    provider=query.provider,
                    account=reading.account[:100],
                    currency=reading.currency,
                    available=reading.available,
                    uncleared=reading.uncleared,
                    reserved=reading.reserved,
                    asked_at=query.requested_at,
                    answered_at=query.answered_at,
                    as_of=as_of,
                    raw=query.raw,
                )
        except IntegrityError:
            pass  # the same result delivered twice: its readings are kept once


def balance_result_record(*, provider: str, result: BalanceResult, raw: str) -> BalanceQuery | None:
    """An asynchronous balance result for the query it names (by ConversationID); None when we asked no such
    query (the caller holds it for a person). A failed result (code ≠ 0: refused, queue timeout) marks the query
    failed. A result arriving after the query expired is still kept: the balance was true when it was taken.
    BalanceUnreadable when the accounts text cannot be read."""
    accounts = parse_daraja_balance(result.accounts_text) if result.succeeded else {}
    with transaction.atomic():
        query = (
            BalanceQuery.objects.select_for_update()
            .filter(provider=provider, conversation_id=result.conversation_id)
            .first()
        )
        if query is None:
            return None
        if query.status == BalanceQuery.Status.ANSWERED:
            return query  # a repeated delivery
        query.answered_at = timezone.now()
        query.result_code = result.result_code[:20]
        query.message = fit(BalanceQuery, "message", result.message)
        query.raw = raw
        query.status = BalanceQuery.Status.ANSWERED if result.succeeded else BalanceQuery.Status.FAILED
        readings = tuple(
            WalletBalance(a.name, a.currency, a.available, a.uncleared, a.reserved) for a in accounts.values()
        )
        _keep(query, readings, as_of=result.completed_at or query.answered_at)
        query.save()
    return query


def daraja_balance_result_record(*, conversation_id: str, result_code: str, value: str) -> BalanceQuery | None:
    """The Daraja result's `AccountBalance` text for the query it names (a shorthand of balance_result_record)."""
    result = BalanceResult(conversation_id, "", str(result_code), "", value if str(result_code) == "0" else "", None)
    return balance_result_record(provider="mpesa", result=result, raw=value)


def balance_queries_expire(*, now: datetime) -> int:
    """Pending queries older than the timeout: expired (the provider does not retry its result)."""
    cutoff = now - timedelta(minutes=settings.FINANCE_BALANCE_RESULT_TIMEOUT_MINUTES)
    return BalanceQuery.objects.filter(status=BalanceQuery.Status.PENDING, requested_at__lt=cutoff).update(
        status=BalanceQuery.Status.EXPIRED, message="no result in time"
    )
