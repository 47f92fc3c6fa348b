"""The ORM reference's settings: only what one callback needs. The database is the site's, read from the same
DATABASE_URL and CONN_MAX_AGE, with the same MySQL options (utf8mb4, strict mode, READ COMMITTED)."""

import os

import environ

SECRET_KEY = os.environ.get("SECRET_KEY", "bench-only-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["bench.orm_reference"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "bench.orm_reference.urls"
USE_TZ = True
TIME_ZONE = "UTC"

DATABASES = {"default": environ.Env.db_url_config(os.environ["DATABASE_URL"])}
DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("CONN_MAX_AGE", "0"))
if DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
    DATABASES["default"]["OPTIONS"] = {
        "charset": "utf8mb4",
        "init_command": "SET sql_mode='STRICT_TRANS_TABLES'",
        "isolation_level": "read committed",
    }

AZAMPAY_CALLBACK_PASSWORD = os.environ.get("AZAMPAY_CALLBACK_PASSWORD", "")
