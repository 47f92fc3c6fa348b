"""Every rail's status query reports only what the provider's answer says: a successful answer that names no
reference and no amount comes back with neither, never with the payment's own values filled in (the services
bind an answer to its payment by what the provider said: payments.services.payments.payment_fetch_status).
HTTP only, no database; each rail's far side is `responses`."""

from collections.abc import Callable
from decimal import Decimal

import pytest
import responses

from payments.providers.airtel.provider import AirtelProvider
from payments.providers.azampay.provider import AzamPayProvider
from payments.providers.base import Collections, PaymentRef, PaymentStatus
from payments.providers.mpesa.provider import MpesaProvider
from payments.providers.mtn.provider import MtnProvider
from payments.tests.azampay_fakes import STATUS_URL as AZAMPAY_STATUS_URL
from payments.tests.azampay_fakes import TOKEN_URL as AZAMPAY_TOKEN_URL
from payments.tests.fixtures import load_fixture
from payments.tests.mpesa_fakes import QUERY_URL
from payments.tests.mpesa_fakes import TOKEN_URL as DARAJA_TOKEN_URL
from payments.tests.providers.airtel import support as airtel
from payments.tests.providers.azampay import support as azampay
from payments.tests.providers.mpesa import support as mpesa
from payments.tests.providers.mtn import support as mtn

REFERENCE = "RHCI-DN-123-20251219120000"  # the payment asked about; its amount below is what a fill would copy


def _azampay() -> tuple[Collections, str]:
    responses.post(AZAMPAY_TOKEN_URL, json=azampay.token_payload())
    responses.get(AZAMPAY_STATUS_URL, json=load_fixture("azampay", "status_success.json"))
    return AzamPayProvider(**azampay.KWARGS), "b85e971981844a6f8888b42579655b8f"


def _mpesa() -> tuple[Collections, str]:
    responses.get(DARAJA_TOKEN_URL, json=load_fixture("mpesa", "token_success.json"))
    responses.post(QUERY_URL, json=load_fixture("mpesa", "query_success.json"))
    return MpesaProvider(**mpesa.KWARGS), "ws_CO_13012021093521236557"


def _mtn() -> tuple[Collections, str]:
    mtn.token_ok()
    responses.get(f"{mtn.RTP_URL}/{mtn.X_REFERENCE_ID}", json={"status": "SUCCESSFUL", "financialTransactionId": "1"})
    return MtnProvider(**mtn.KWARGS), mtn.X_REFERENCE_ID


def _airtel() -> tuple[Collections, str]:
    responses.post(airtel.TOKEN_URL, json=airtel.fixture("token_success.json"))
    responses.get(airtel.ENQUIRY_URL, json=airtel.fixture("enquiry_success.json"))
    return AirtelProvider(**airtel.KWARGS), ""


RAILS: dict[str, Callable[[], tuple[Collections, str]]] = {
    "azampay": _azampay,
    "mpesa": _mpesa,
    "mtn": _mtn,
    "airtel": _airtel,
}


@pytest.mark.parametrize("rail", list(RAILS))
@responses.activate
def test_a_status_answer_without_reference_or_amount_is_not_filled_with_the_payments_own(rail):
    provider, provider_reference = RAILS[rail]()
    ref = PaymentRef(reference=REFERENCE, provider_reference=provider_reference, amount=Decimal("5000"), currency="TZS")
    result = provider.fetch_status(ref)
    assert result.status == PaymentStatus.SUCCEEDED
    assert result.our_reference == ""
    assert result.amount is None


@pytest.mark.parametrize(
    "make",
    [
        lambda: AzamPayProvider(**azampay.KWARGS),
        lambda: MpesaProvider(**mpesa.KWARGS),
        lambda: MtnProvider(**mtn.KWARGS),
    ],
    ids=["azampay", "mpesa", "mtn"],  # Airtel asks by our own id: it always has something to ask about
)
def test_a_status_query_with_no_provider_id_yet_fills_in_nothing_either(make):
    result = make().fetch_status(PaymentRef(reference=REFERENCE, provider_reference=""))
    assert result.status == PaymentStatus.UNKNOWN
    assert result.our_reference == "" and result.amount is None


def test_only_airtel_asks_by_our_own_reference():
    """The one rail whose answer is bound by the question: its enquiry's path is our transaction id."""
    asks_by_ours = {
        cls.__name__: cls.status_asks_by_our_reference
        for cls in (AzamPayProvider, MpesaProvider, MtnProvider, AirtelProvider)
    }
    assert asks_by_ours == {
        "AzamPayProvider": False,
        "MpesaProvider": False,
        "MtnProvider": False,
        "AirtelProvider": True,
    }
