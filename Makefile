# Two commands on a fresh machine: `make run` (demo on SQLite + provider sandbox) and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
SANDBOX_PORT ?= 8001
MYSQL_PROBE_URL := mysql://root@127.0.0.1:3306/donations
# pytest-xdist workers: one per core of the 2-core machines this runs on (TEST_WORKERS=0 runs in one process).
TEST_WORKERS ?= 2

# The first Python >= 3.12 found: on PATH, then under pyenv. Django 6.1 needs 3.12.
PYTHON ?= $(shell for c in python3.13 python3.12 $$HOME/.pyenv/versions/3.13*/bin/python3.13 \
	$$HOME/.pyenv/versions/3.12*/bin/python3.12 /root/.pyenv/versions/3.13*/bin/python3.13 \
	/root/.pyenv/versions/3.12*/bin/python3.12; do \
	p=$$(command -v $$c 2>/dev/null) && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null \
	&& { echo $$p; break; }; done)

.PHONY: test-packages help install install-dev run serve sandbox migrate seed test test-sqlite test-mysql lint fmt reconcile bench screenshots clean

help:
	@echo "make run     demo: site on http://127.0.0.1:$(PORT), provider sandbox on http://127.0.0.1:$(SANDBOX_PORT)"
	@echo "make test    ruff, mypy, then the suite on SQLite, then on MariaDB/MySQL when one is reachable"
	@echo "make lint | make fmt | make reconcile | make bench | make screenshots"

# Debian packages: mysqlclient compiles against the MySQL/MariaDB client headers (every install needs them:
# requirements.txt is the production set); WeasyPrint (the PDF receipts, receipts/) loads Pango and HarfBuzz's
# subsetter at run time and the receipts embed DejaVu so Swahili renders.
# The browser tests drive Debian's Chromium (make test only).
BUILD_PACKAGES := default-libmysqlclient-dev pkg-config build-essential
PDF_PACKAGES := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core
TEST_PACKAGES := chromium fonts-dejavu-core

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@bash scripts/system-packages.sh "building mysqlclient (make install)" $(BUILD_PACKAGES)
	@bash scripts/system-packages.sh "rendering PDF receipts with WeasyPrint (make install)" $(PDF_PACKAGES)
	@if [ -z "$(PYTHON)" ]; then echo "ERROR: Python 3.12 or newer is required (Django 6.1). Install python3.12 (or pyenv install 3.12) and retry." >&2; exit 1; fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $@

install install-dev: $(VENV)/.installed

migrate: install
	DEBUG=1 $(PY) manage.py migrate --noinput

seed: migrate
	DEBUG=1 DJANGO_SUPERUSER_USERNAME=$${DJANGO_SUPERUSER_USERNAME:-admin} \
	DJANGO_SUPERUSER_PASSWORD=$${DJANGO_SUPERUSER_PASSWORD:-admin} $(PY) manage.py seed_demo

# The demo: sandbox and site together; Ctrl-C stops both.
run: seed
	@echo ""
	@echo "  Site:        http://127.0.0.1:$(PORT)/"
	@echo "  API docs:    http://127.0.0.1:$(PORT)/api/docs/"
	@echo "  Admin:       http://127.0.0.1:$(PORT)/admin/   (admin / admin unless DJANGO_SUPERUSER_* are set)"
	@echo "  Sandbox:     http://127.0.0.1:$(SANDBOX_PORT)/_sandbox/transactions"
	@echo ""
	@export DEBUG=1 PAYMENTS_SANDBOX_URL=http://127.0.0.1:$(SANDBOX_PORT) SITE_URL=http://127.0.0.1:$(PORT); \
	trap 'kill 0' INT TERM EXIT; \
	$(PY) manage.py sandbox --port $(SANDBOX_PORT) & \
	$(PY) manage.py runserver 127.0.0.1:$(PORT) --noreload & \
	wait

sandbox: install
	DEBUG=1 $(PY) manage.py sandbox --port $(SANDBOX_PORT)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test-packages:
	@bash scripts/system-packages.sh "the browser tests (make test)" $(TEST_PACKAGES)

test: install test-packages
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@echo "== mypy (providers, services, selectors)"
	$(VENV)/bin/mypy
	@$(MAKE) --no-print-directory test-sqlite
	@$(MAKE) --no-print-directory test-mysql

test-sqlite: install
	@echo "== pytest on SQLite ($(TEST_WORKERS) workers)"
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS)

# MariaDB/MySQL: TEST_MYSQL_URL if given, else a local server with root and no password.
test-mysql: install
	@url="$${TEST_MYSQL_URL:-}"; \
	if [ -z "$$url" ] && $(PY) -c "import MySQLdb; MySQLdb.connect(host='127.0.0.1', port=3306, user='root', passwd='')" 2>/dev/null; then url=$(MYSQL_PROBE_URL); fi; \
	if [ -z "$$url" ]; then echo "== SKIPPED the MariaDB/MySQL run: no TEST_MYSQL_URL and no server on 127.0.0.1:3306 (root, no password)."; exit 0; fi; \
	echo "== pytest on MariaDB/MySQL ($${url%%@*}@...): the tests that touch the database ($(TEST_WORKERS) workers)"; \
	DATABASE_URL="$$url" $(VENV)/bin/pytest -q -n $(TEST_WORKERS)

reconcile: install
	$(PY) manage.py reconcile_payments

# Phone-sized PNGs of the main pages into docs/screenshots/ (Debian's chromium, no browser download), and two
# receipt PDFs rasterised by pdftoppm (poppler-utils).
screenshots: install
	DJANGO_SETTINGS_MODULE=config.settings_test $(PY) -m pytest portal/tests/screenshots.py receipts/tests/screenshots.py -q

bench: install
	bash bench/run.sh

clean:
	rm -rf $(VENV) db.sqlite3* staticfiles
