"""A Content-Security-Policy on every HTML page, and no inline script it would have to allow (docs/security.md).

The test walks the site as its visitors do: the portal from its home page (a guest, then a signed-in donor), the
admin from its index as a superuser with a second factor, and the API docs. It follows every same-site link it
finds (never a logout, a delete or a "send"; a query string shows the same template, so it is left off), and on
every HTML answer asserts the policy header and that each <script> either loads a file or carries the request's
nonce, that no element has an inline event handler and no link is a javascript: URL. A new page with an inline
script fails here.
"""

import re
from collections import deque
from decimal import Decimal
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from config.tests.helpers import login_with_second_factor
from donor.tests.factories import DonationFactory
from patients.tests.factories import PatientFactory
from payments.tests.factories import PaymentFactory

pytestmark = pytest.mark.django_db

SKIP = re.compile(r"logout|/delete/|/send|/approve|/replay|/download|\?_popup|/password/|\.csv|/r/\d+/")
MAX_PAGES = 400


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self.handlers: list[str] = []
        self._in_script = False
        self.inline_code: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script":
            self.scripts.append(attributes)
            self._in_script = "src" not in attributes
        for name, value in attrs:
            if name.startswith("on"):
                self.handlers.append(f"<{tag} {name}>")
            if (
                name in ("href", "src", "action", "formaction")
                and value
                and value.strip().lower().startswith("javascript:")
            ):
                self.handlers.append(f"<{tag} {name}={value}>")
        if tag == "a" and attributes.get("href"):
            self.links.append(attributes["href"])

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline_code.append(data.strip()[:60])


def nonce_of(policy: str) -> str | None:
    found = re.search(r"'nonce-([^']+)'", policy)
    return found.group(1) if found else None


def walk(client: Client, *starts: str) -> dict[str, int]:
    """Every same-site page reachable from `starts` (bounded); asserts the policy on each HTML one."""
    seen: dict[str, int] = {}
    queue = deque(starts)
    while queue and len(seen) < MAX_PAGES:
        url = queue.popleft()
        if url in seen:
            continue
        response = client.get(url)
        seen[url] = response.status_code
        if not response.get("Content-Type", "").startswith("text/html"):
            continue
        policy = response.get("Content-Security-Policy", "")
        assert policy, f"{url}: no Content-Security-Policy"
        assert "script-src" in policy and "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0], url
        assert "object-src 'none'" in policy and "frame-ancestors 'none'" in policy, url
        page = Page()
        page.feed(response.content.decode())
        nonce = nonce_of(policy)
        for script in page.scripts:
            assert "src" in script or (nonce and script.get("nonce") == nonce), f"{url}: inline <script> {script}"
        assert not page.handlers, f"{url}: inline event handlers or javascript: URLs {page.handlers}"
        for href in page.links:
            target, _ = urldefrag(urljoin(url, href))
            parts = urlsplit(target)
            if parts.netloc and parts.netloc != "testserver":
                continue
            path = parts.path  # a query (a filter, a sort, a page) shows the same template again
            if path and path not in seen and not SKIP.search(path) and not path.startswith("/static/"):
                queue.append(path)
    return seen


@pytest.fixture
def site():
    patient = PatientFactory(code="PAT-0001", currency="TZS", funding_goal=Decimal("1000000"))
    donation = DonationFactory(patient=patient)
    PaymentFactory(donation=donation)
    return donation


def test_every_portal_page_has_the_policy_and_no_inline_script(client: Client, site, donor_user):
    pages = walk(client, "/", f"/donations/{site.public_token}/", f"/donations/{site.public_token}/panel/", "/nowhere/")
    assert {"/", "/patients/PAT-0001/", "/general-fund/", "/login/", "/signup/", "/nowhere/"} <= set(pages)
    assert pages["/nowhere/"] == 404

    client.force_login(donor_user)
    pages = walk(client, "/my/donations/", "/")
    assert pages["/my/donations/"] == 200


def test_every_admin_page_has_the_policy_and_no_inline_script(client: Client, site):
    admin = get_user_model().objects.create_superuser("root", "root@example.org", "x")
    login_with_second_factor(client, admin)
    assert walk(Client(), "/admin/login/")["/admin/login/"] == 200
    pages = walk(client, "/admin/")
    ok = [url for url, status in pages.items() if status == 200]
    assert len(ok) > 40, sorted(pages)  # the dashboard, settlement, every changelist, add and change page
    assert any("/admin/payments/payment/" in url for url in ok)


def test_the_api_docs_have_the_policy_and_load_their_script_as_a_file(client: Client):
    pages = walk(client, "/api/docs/")
    assert pages["/api/docs/"] == 200
    policy = client.get("/api/docs/")["Content-Security-Policy"]
    assert "https://cdn.jsdelivr.net" in policy.split("script-src")[1].split(";")[0]  # the Swagger UI's files
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and "javascript" in script["Content-Type"]


def test_the_portal_scripts_are_served_as_files(client: Client, site):
    html = client.get("/patients/PAT-0001/").content.decode()
    assert re.search(r'<script src="/static/portal/donate-form\.js"', html)
    html = client.get(f"/donations/{site.public_token}/").content.decode()
    assert re.search(r'<script src="/static/portal/donation-status\.js"', html)
