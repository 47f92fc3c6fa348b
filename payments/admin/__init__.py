"""The payments admin, one module per model; importing them registers their ModelAdmins."""

from payments.admin import callbacks, payments, payouts, refunds  # noqa: F401
