"""The provider boundary's package: every result carries a status, and the one import path still holds."""

import pytest

from payments.providers import base
from payments.providers.base import PaymentStatus, PayoutResult, RefundResult


@pytest.mark.parametrize(
    ("status", "succeeded", "pending"),
    [
        (PaymentStatus.SUCCEEDED, True, False),
        (PaymentStatus.FAILED, False, False),
        (PaymentStatus.PENDING, False, True),
        (PaymentStatus.UNKNOWN, False, True),
    ],
)
def test_a_payout_result_carries_a_status_and_reads_as_before(status, succeeded, pending):
    result = PayoutResult("RHCI-PO-1", "AG_1", "0", "text", status)
    assert result.status == status
    assert (result.succeeded, result.pending) == (succeeded, pending)


def test_payout_and_refund_results_name_their_status_the_same_way():
    assert {f for f in PayoutResult.__dataclass_fields__} & {f for f in RefundResult.__dataclass_fields__} >= {
        "our_reference",
        "provider_reference",
        "status",
        "receipt",
        "amount",
        "currency",
    }


def test_every_name_is_importable_from_the_package():
    assert sorted(base.__all__) == sorted(set(base.__all__))
    for name in base.__all__:
        assert getattr(base, name) is not None
