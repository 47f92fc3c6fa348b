"""Simulated Airtel Money (simulator.py, money.py) and its bodies (bodies.py); the names other code imports."""

from payments.sandbox.airtel.bodies import COLLECTION_RESULTS, callback_hash, collection_callback, new_money_id
from payments.sandbox.airtel.simulator import PREFIX, PROVIDER, AirtelSimulator

__all__ = [
    "COLLECTION_RESULTS",
    "PREFIX",
    "PROVIDER",
    "AirtelSimulator",
    "callback_hash",
    "collection_callback",
    "new_money_id",
]
