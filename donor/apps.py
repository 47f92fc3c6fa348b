"""The donor app: donors, donations, where their money went (Allocation) and the messages about it (Notice).
ready() revokes an account's API tokens when its password changes and wires the treatment updates' fan-out."""

from django.apps import AppConfig


class DonorConfig(AppConfig):
    name = "donor"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import pre_save

        from donor.tokens import revoke_on_password_change
        from donor.updates import update_approved_receiver
        from patients.signals import update_approved

        # A new password revokes the account's API tokens (donor/tokens.py).
        pre_save.connect(revoke_on_password_change, sender=get_user_model(), dispatch_uid="donor-token-revoke")
        # An approved treatment update is told to its patient's donors (donor/updates.py), in its transaction.
        update_approved.connect(update_approved_receiver, dispatch_uid="donor-update-fanout")
