"""The donor portal: the site's HTML pages (patients, the donate form, a donation's live status, sign-up, my
donations), its forms, templates and scripts, and the demo seeding. It sits above the domain apps and calls their
services, so donor/ and patients/ never import presentation code (payments → donor → patients stays one way)."""

from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
