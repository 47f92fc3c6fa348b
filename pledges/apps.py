"""Monthly pledges: the app that turns a pledge into one ordinary donation a month (pledges.run)."""

from django.apps import AppConfig


class PledgesConfig(AppConfig):
    """Monthly pledges: above donor and payments (it uses their services); nothing below imports it."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "pledges"
