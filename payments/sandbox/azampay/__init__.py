"""Simulated AzamPay (simulator.py) and its bodies (bodies.py); the names other code imports."""

from payments.sandbox.azampay.bodies import CALLBACK_MESSAGE, STATUS_TEXT, build_callback, sign_callback
from payments.sandbox.azampay.checks import (
    CALLBACK_PATH,
    DEFAULT_CALLBACK_PASSWORD,
    HOSTED_OPERATOR,
    PROVIDER,
    TOKEN_REFUSED,
)
from payments.sandbox.azampay.simulator import AzamPaySimulator, default_callback_url

__all__ = [
    "CALLBACK_MESSAGE",
    "CALLBACK_PATH",
    "DEFAULT_CALLBACK_PASSWORD",
    "HOSTED_OPERATOR",
    "PROVIDER",
    "STATUS_TEXT",
    "TOKEN_REFUSED",
    "AzamPaySimulator",
    "build_callback",
    "default_callback_url",
    "sign_callback",
]
