"""The ORM reference: the four essential statements of an AzamPay success callback through Django's ORM.

Calibration only, NOT the site (bench/README.md): `BENCH_APPS=orm bash bench/run.sh`, or under gunicorn
`bench.orm_reference.wsgi:application`. Its own settings (no middleware, DEBUG off, the site's DATABASE_URL
and CONN_MAX_AGE), unmanaged models over the site's tables, one view.
"""
