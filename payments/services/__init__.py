"""Writes for payments, split by concept: starting and applying payments, the callback inbox,
reconciliation, idempotent requests. Import from the submodules."""
