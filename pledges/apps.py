from django.apps import AppConfig


class PledgesConfig(AppConfig):
    """Monthly pledges: above donor and payments (it uses their services); nothing below imports it."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "pledges"
