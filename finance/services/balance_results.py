"""Daraja's Account Balance result, as a role of the callback inbox (settings.CALLBACK_ROLE_HANDLERS): the
result and queue-timeout POSTs reach the secret URLs /webhooks/mpesa/balance/{result,timeout}/<token>/, are
stored before anything trusts them, authenticated like the payout results (the initiator URLs' secret), and
then recorded here against the query they name. A result for a query we never sent is held for a person."""

from finance.balances import BalanceUnreadable, parse_daraja_balance
from finance.services.balance import balance_result_record
from payments.models import CallbackEvent
from payments.providers.base import BalanceResult, CallbackMalformed, UrlToken, WalletBalances
from payments.services.callback_steps import Delivery, Parsed, Role, held
from payments.services.inbox import CallbackOutcome, Outcome, callback_event_mark


class BalanceResultRole(Role):
    what = "balance result"

    def provider(self, event: CallbackEvent) -> WalletBalances | None:
        adapter = super().provider(event)
        return adapter if isinstance(adapter, WalletBalances) else None

    def no_provider(self, event: CallbackEvent) -> CallbackOutcome:
        return held(event, f"{event.provider} reports no balances")

    def parse(self, provider: WalletBalances, event: CallbackEvent, body: bytes) -> Parsed:
        result = provider.parse_balance_result(event.kind, body)
        if result.succeeded:
            try:
                parse_daraja_balance(result.accounts_text)
            except BalanceUnreadable as exc:
                raise CallbackMalformed(f"AccountBalance: {exc}") from None
        return Parsed(result, our_reference=result.originator_id[:100], provider_reference=result.conversation_id)

    def decide(self, delivery: Delivery) -> CallbackOutcome:
        event, result = delivery.event, delivery.value
        assert isinstance(result, BalanceResult)
        if delivery.token.verdict == UrlToken.ABSENT:
            # A balance is no money, but a forged one could hide a difference: only the secret URL is believed.
            return held(event, "a balance result at the URL without our secret")
        query = balance_result_record(provider=event.provider, result=result, raw=event.body)
        if query is None:
            return held(event, f"a balance result for {result.conversation_id}, a query we did not send")
        callback_event_mark(event, CallbackEvent.Status.PROCESSED, error=f"balance {query.status}: {result.message}")
        return CallbackOutcome(Outcome.ACCEPTED, 200, "Callback received")
