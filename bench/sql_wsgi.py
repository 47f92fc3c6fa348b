"""gunicorn entry point with bench/lean_prototype.py in SQL mode: BENCH_WSGI=bench.sql_wsgi:application."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

from bench import lean_prototype  # noqa: E402

lean_prototype.apply(sql=True)
