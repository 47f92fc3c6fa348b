"""Simulated Safaricom Daraja (simulator.py, money.py) and its bodies (bodies.py); the names other code imports."""

from payments.sandbox.daraja.bodies import NAIROBI, RESULT_CODES, build_stk_callback, new_receipt
from payments.sandbox.daraja.simulator import PREFIX, PROVIDER, DarajaSimulator

__all__ = ["NAIROBI", "PREFIX", "PROVIDER", "RESULT_CODES", "DarajaSimulator", "build_stk_callback", "new_receipt"]
