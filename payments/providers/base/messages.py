"""The frozen dataclasses that cross the provider boundary, one group per capability.

A request is what a service asks a provider to do; a result is what the provider's answer, callback or
status query says, in our words. Every result carries a `status` (a `PaymentStatus`), so services read
payments, payouts and refunds the same way.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from payments.providers.base.types import PaymentStatus

# --- Collections ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChargeRequest:
    reference: str  # our Payment.reference; providers echo it back
    amount: Decimal
    currency: str
    msisdn: str = ""  # E.164 digits without "+"
    channel: str = ""
    callback_url: str = ""
    success_url: str = ""
    failure_url: str = ""
    description: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)  # bank account, OTP, …
    # The provider's id for this payment when we choose it (MTN's X-Reference-Id): stored before the request.
    provider_reference: str = ""


@dataclass(frozen=True)
class PaymentRef:
    reference: str
    provider_reference: str
    channel: str = ""
    amount: Decimal | None = None
    currency: str = ""


@dataclass(frozen=True)
class ProviderResult:
    status: PaymentStatus
    provider_reference: str = ""
    our_reference: str = ""
    amount: Decimal | None = None
    currency: str = ""
    receipt: str = ""
    msisdn: str = ""
    message: str = ""  # the provider's human text, shown to admins and (translated) to donors
    checkout_url: str = ""


# --- Paybill --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaybillPayment:
    """A payment the payer made on their own phone, as its validation or confirmation callback tells it."""

    transaction_id: str  # unique per payment: the idempotency key
    amount: Decimal
    account: str  # what the payer typed as the account number
    shortcode: str = ""
    time: str = ""
    payer_id: str = ""  # as the provider sends it: a phone number, masked, or (M-Pesa since 2024) a hash
    payer_name: str = ""
    transaction_type: str = ""


# --- Payouts --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PayoutRequest:
    reference: str  # our id for the payout; the provider echoes it in the result
    msisdn: str
    amount: Decimal
    currency: str
    result_url: str  # where the provider sends the result (with our secret)
    timeout_url: str = ""
    remarks: str = ""
    provider_reference: str = ""  # our choice of the provider's id, stored before the request (MTN)


@dataclass(frozen=True)
class PayoutAccepted:
    provider_reference: str  # the provider's id for the payout
    message: str = ""
    result: "PayoutResult | None" = None  # a provider that answers with the final result at once (Airtel)


@dataclass(frozen=True)
class PayoutResult:
    our_reference: str
    provider_reference: str
    code: str
    description: str
    status: PaymentStatus  # SUCCEEDED, FAILED or PENDING (a status query's "not decided yet")
    receipt: str = ""
    amount: Decimal | None = None  # what the provider says it paid, when it says (compared with ours)
    currency: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status == PaymentStatus.SUCCEEDED

    @property
    def pending(self) -> bool:
        return self.status in (PaymentStatus.PENDING, PaymentStatus.UNKNOWN)


# --- Refunds --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefundRequest:
    reference: str  # our id for the refund
    payment_reference: str  # the provider's id of the payment being refunded
    amount: Decimal
    currency: str
    msisdn: str = ""
    result_url: str = ""
    timeout_url: str = ""
    reason: str = ""
    provider_reference: str = ""  # our choice of the provider's id for the refund, stored before the request
    payment_our_reference: str = ""  # our reference of the payment (some providers echo it)
    payment_receipt: str = ""  # the provider's receipt of the payment (M-Pesa's reversal names the receipt)


@dataclass(frozen=True)
class RefundAccepted:
    provider_reference: str
    message: str = ""
    # SUCCEEDED when the answer itself says the money went back (Airtel answers at once); else the result
    # comes later, by callback or status query.
    status: PaymentStatus = PaymentStatus.PENDING
    receipt: str = ""


@dataclass(frozen=True)
class RefundResult:
    our_reference: str
    provider_reference: str
    status: PaymentStatus  # SUCCEEDED, FAILED, PENDING or UNKNOWN
    message: str = ""
    receipt: str = ""  # the provider's transaction id of the money going back
    amount: Decimal | None = None  # what the provider says it gave back, when it says (compared with ours)
    currency: str = ""
    reversed_receipt: str = ""  # the receipt of the payment it gave back (M-Pesa's OriginalTransactionID)
