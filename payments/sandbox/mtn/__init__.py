"""Simulated MTN MoMo (simulator.py, scripts.py) and its status object (bodies.py); the names other code imports."""

from payments.sandbox.mtn.bodies import RESULT_REASONS, status_object
from payments.sandbox.mtn.scripts import OFFICIAL_PAYEE, OFFICIAL_PAYER, Script
from payments.sandbox.mtn.simulator import PREFIX, PROVIDER, MtnSimulator

__all__ = [
    "OFFICIAL_PAYEE",
    "OFFICIAL_PAYER",
    "PREFIX",
    "PROVIDER",
    "RESULT_REASONS",
    "MtnSimulator",
    "Script",
    "status_object",
]
