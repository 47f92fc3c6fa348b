"""The ASGI entry point. Production runs WSGI (gunicorn, config/wsgi.py); this is here for servers that need it."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_asgi_application()
