"""gunicorn bench.orm_reference.wsgi:application (run.sh exports the site's DJANGO_SETTINGS_MODULE: overridden)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ["DJANGO_SETTINGS_MODULE"] = "bench.orm_reference.settings"
application = get_wsgi_application()
