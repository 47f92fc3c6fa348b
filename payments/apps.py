"""The payments app: the rails, the callback inbox, money out and the ledger checks. Its ready() wires what
the apps below it only announce (patients' payout-destination and treatment-update steps, into the audit log)
and registers the deploy checks."""

from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"

    def ready(self) -> None:
        from patients.signals import destination_audit, update_audit
        from payments import checks  # noqa: F401  (registers the system checks)
        from payments.services.audit import audit_destination_step

        # patients imports nothing of payments, so it announces its payout-destination steps and we audit them.
        destination_audit.connect(audit_destination_step, dispatch_uid="payments.audit_destination_step")
        update_audit.connect(audit_destination_step, dispatch_uid="payments.audit_update_step")  # treatment updates
