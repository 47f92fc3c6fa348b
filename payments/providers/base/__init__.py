"""What a mobile-money provider can do for us, in our words. Provider packages import no ORM.

`PaymentProvider` is what every provider is: a code, the callback routes it declares, how far its callbacks
can be believed and how they are acknowledged. What it can *do* is a set of capabilities, each an ABC with
frozen dataclasses crossing the boundary:

- `Collections`: prompt a payer (push or checkout page), ask about a payment, read a payment callback;
- `Paybill`: money the payer sends on their own (M-Pesa C2B): validation and confirmation callbacks;
- `Payouts`: send money to a treatment partner's wallet, read the result callback;
- `Refunds`: give a completed payment back to the payer;
- `WalletBalances`, `StatementPull` (statements.py): what the month close asks of a provider's own books.

Services depend on a capability (`isinstance(provider, Payouts)`), never on a provider's class.

Split by concept so each part reads on its own: `types` (enums, routes, warnings), `messages` (the requests
and results of each capability), `errors`, `parsing` (safe JSON and money) and `capabilities` (the ABCs).
Everything is re-exported here: `from payments.providers.base import X` is the one import callers use.
"""

from payments.providers.base.capabilities import Collections, Paybill, PaymentProvider, Payouts, Refunds
from payments.providers.base.errors import CallbackMalformed, ProviderError, ProviderSettingsInvalid
from payments.providers.base.messages import (
    ChargeRequest,
    PaybillPayment,
    PaymentRef,
    PayoutAccepted,
    PayoutRequest,
    PayoutResult,
    ProviderResult,
    RefundAccepted,
    RefundRequest,
    RefundResult,
)
from payments.providers.base.parsing import load_json, load_json_object, parse_money
from payments.providers.base.statements import (
    BalanceAnswer,
    BalanceResult,
    PulledTransaction,
    StatementPull,
    WalletBalance,
    WalletBalances,
)
from payments.providers.base.types import (
    CallbackRole,
    CallbackRoute,
    CallbackTrust,
    DeployWarning,
    PaybillRejection,
    PaymentMethod,
    PaymentStatus,
    RawCallback,
    RouteToken,
    SettingProblem,
    Settlement,
    UrlToken,
)

__all__ = [
    "BalanceAnswer",
    "BalanceResult",
    "PulledTransaction",
    "StatementPull",
    "WalletBalance",
    "WalletBalances",
    "CallbackMalformed",
    "CallbackRole",
    "CallbackRoute",
    "CallbackTrust",
    "ChargeRequest",
    "Collections",
    "DeployWarning",
    "Paybill",
    "PaybillPayment",
    "PaybillRejection",
    "PaymentMethod",
    "PaymentProvider",
    "PaymentRef",
    "PaymentStatus",
    "PayoutAccepted",
    "PayoutRequest",
    "PayoutResult",
    "Payouts",
    "ProviderError",
    "ProviderResult",
    "ProviderSettingsInvalid",
    "RawCallback",
    "RefundAccepted",
    "RefundRequest",
    "RefundResult",
    "Refunds",
    "RouteToken",
    "SettingProblem",
    "Settlement",
    "UrlToken",
    "load_json",
    "load_json_object",
    "parse_money",
]
