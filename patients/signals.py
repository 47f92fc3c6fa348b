"""Signals the patients app sends for others to record, so that it imports nothing of donor or payments.

`destination_audit`: a step of a payout destination change (requested, approved, rejected, cancelled, seeded).
The payments app writes each into its audit log (payments.apps, payments.services.audit). It is sent inside the
transaction of the step with `send`, not `send_robust`: a receiver that fails rolls the step back, so a change
is never applied without its audit entry.
Arguments: actor (a user or None), action ("destination.approve"), target ("partner Kijabe Hospital #3"),
detail (the old and new values).
"""

from django.dispatch import Signal

destination_audit = Signal()

# `update_audit`: a step of a treatment update (written, approved, rejected), same arguments as
# `destination_audit`; the payments app writes it into the same audit log.
update_audit = Signal()

# `update_approved`: a treatment update was approved (argument `update`, a TreatmentUpdate). Sent inside the
# approval's transaction: the donor app records the donors' messages in its outbox there (donor/updates.py),
# so the approval and the messages it calls for commit together, or neither does.
update_approved = Signal()
