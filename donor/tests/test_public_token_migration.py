"""The data migration gives every donation that existed before public tokens one of its own (issue 18, item 2):
their old reference links then answer only their donor and staff, and the new link works for them too."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("donor", "0002_allocation_reversals")]
AFTER = [("donor", "0003_donation_public_token")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_existing_donations_each_get_a_distinct_unguessable_token():
    old = migrate(BEFORE)
    Donation = old.get_model("donor", "Donation")
    for n in range(3):
        Donation.objects.create(reference=f"RHCI-DN-{n}-20251219120000", amount="5000", currency="TZS")
    try:
        new = migrate(AFTER)
        tokens = list(new.get_model("donor", "Donation").objects.values_list("public_token", flat=True))
        assert len(tokens) == 3 and len(set(tokens)) == 3
        assert all(token and len(token) >= 22 for token in tokens)
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
