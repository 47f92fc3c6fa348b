"""The payments admin, one module per model; importing them registers their ModelAdmins."""

from payments.admin import audit, callbacks, payments, payouts, refunds  # noqa: F401
