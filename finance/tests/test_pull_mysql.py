"""Two pulls of one window at the same instant on MariaDB: the lines are stored once. Skipped on SQLite."""

import json

import pytest
import responses

from finance.models import StatementLine
from finance.services.pull import statement_pull
from finance.tests.test_pull import NOW, QUERY_URL
from payments.tests.helpers import run_together
from payments.tests.mpesa_fakes import fixture

pytestmark = [pytest.mark.mysql, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("mpesa_settings")]


def test_two_pulls_at_once_store_each_line_once(daraja):
    def answer(request):
        offset = json.loads(request.body)["OffSetValue"]
        return 200, {}, json.dumps(fixture("pull_query_page.json" if offset == "0" else "pull_query_none.json"))

    daraja.add_callback(responses.POST, QUERY_URL, callback=answer)
    results = run_together([lambda: statement_pull(provider="mpesa", now=NOW)] * 2)
    assert sorted(r.new_lines for r in results) == [0, 2]
    assert StatementLine.objects.count() == 2
