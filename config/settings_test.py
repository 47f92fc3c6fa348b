"""Test settings: the real settings module, with a fast hasher and in-memory email."""

import os

os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-0123456789")
os.environ.setdefault("AZAMPAY_CALLBACK_PASSWORD", "test-callback-password")
os.environ.setdefault("LOG_DIR", "/tmp/donation-portal-test-logs")  # noqa: S108

from config.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # MAILERS arrives with Django 7
# The tests render pages without running collectstatic: plain names, no manifest (config/tests/test_static_files.py
# runs the production storage under gunicorn).
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
STATIC_ROOT = None  # nothing collected: WhiteNoise serves nothing (the live server serves the apps' files itself)
TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not the shared in-memory DB: the live-server tests have several threads writing at once, and
    # only a file database honours WAL and the busy timeout (shared memory raises "table is locked").
    DATABASES["default"]["TEST"] = {"NAME": f"/tmp/donation-portal-test-{os.getpid()}.sqlite3"}  # noqa: F405,S108
# The scheduler's extra commands reach providers: a test that wants them names them (payments' scheduler tests).
SCHEDULED_COMMANDS = []  # noqa: F405
# Receipts yield to a callback storm: off, so that a test posting a burst still sees its receipts sent; the yield's
# own tests (payments/tests/services/test_drain.py) turn it on.
NOTICE_YIELD_RATE = 0
