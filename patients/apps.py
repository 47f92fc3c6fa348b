"""The patients app: patients, the treatment partners paid on their behalf, and changes to a partner's payout
destination (approved by two people). The bottom layer of payments → donor → patients."""

from django.apps import AppConfig


class PatientsConfig(AppConfig):
    name = "patients"
