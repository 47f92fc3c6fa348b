"""POST /_sandbox/learn: payments seeded straight into the database become paid charges the simulators answer for
(the fault harness relies on it instead of a fake provider of its own)."""

import json

import pytest

from payments.sandbox.base import SandboxContext
from payments.sandbox.dispatch import CallbackDispatcher
from payments.sandbox.mtn import MtnSimulator
from payments.sandbox.protocol import SandboxRequest
from payments.sandbox.server import InspectionSimulator
from payments.sandbox.store import SandboxStore

CHARGES = [
    {
        "provider": "azampay",
        "transaction_id": "a" * 32,
        "external_id": "RHCI-DN-1",
        "amount": "1000",
        "currency": "TZS",
    },
    {"provider": "mpesa", "transaction_id": "ws_CO_1", "external_id": "RHCI-DN-2", "amount": "50", "currency": "KES"},
    {
        "provider": "mtn",
        "transaction_id": "3F9C0A1B-2C3D-4E5F-8A9B-0C1D2E3F4A5B",
        "external_id": "RHCI-DN-3",
        "amount": "5000",
        "currency": "UGX",
        "msisdn": "256772123456",
    },  # fmt: skip
    {
        "provider": "airtel",
        "transaction_id": "MP261201.1015.A12345",
        "external_id": "RHCIDN4",
        "amount": "5000",
        "currency": "UGX",
    },  # fmt: skip
]


@pytest.fixture
def context():
    store = SandboxStore()
    dispatcher = CallbackDispatcher(store)
    yield SandboxContext(store=store, dispatcher=dispatcher, callback_url="http://127.0.0.1:9/")
    dispatcher.stop()


def learn(context: SandboxContext, payload: object):
    request = SandboxRequest("POST", "/_sandbox/learn", {}, {"content-type": "application/json"},
                             json.dumps(payload).encode())  # fmt: skip
    return InspectionSimulator(context).handle(request, "/learn")


def test_learnt_payments_are_paid_charges_the_simulators_answer_for(context):
    response = learn(context, {"charges": CHARGES})
    assert response.status == 200 and json.loads(response.body)["learnt"] == 4
    for item in CHARGES:
        provider, transaction_id = item["provider"], item["transaction_id"]
        charge = context.store.get_charge(provider, transaction_id.lower() if provider == "mtn" else transaction_id)
        assert charge is not None and charge.state() == "success" and charge.external_id == item["external_id"]
    mtn = context.store.get_charge("mtn", CHARGES[2]["transaction_id"].lower())
    status = MtnSimulator(context).status_body(mtn)
    assert status["status"] == "SUCCESSFUL" and status["externalId"] == "RHCI-DN-3" and status["amount"] == "5000"


@pytest.mark.parametrize(
    "payload",
    [[], {"charges": "x"}, {"charges": [{"provider": "mtn"}]}, {"charges": [{**CHARGES[0], "provider": "paypal"}]}],
)
def test_learn_refuses_what_it_cannot_learn_with_400(context, payload):
    response = learn(context, payload)
    assert response.status == 400 and "message" in json.loads(response.body)
    assert context.store.find_charges() == []
