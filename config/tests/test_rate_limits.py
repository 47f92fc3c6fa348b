"""Bounded doors (docs/security.md "Threats and what stops them"): payment prompts per client and per phone, the
API and the portal alike; sign-ins, registrations and donation status reads per client. Over a limit: 429 with
Retry-After and X-RateLimit-*, the API's error shape on API paths, a page or a form error in the portal."""

import json
from decimal import Decimal
from itertools import count
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from donor.models import Donation
from donor.tests.factories import DonationFactory
from patients.tests.factories import PatientFactory
from payments.models import Payment
from payments.tests.azampay_fakes import MNO_URL, fixture

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("azampay_settings")]

DONATIONS_URL = "/api/v1.0/donors/donations/"
PHONE = "0712345678"


@pytest.fixture
def patient():
    return PatientFactory(code="PAT-0042", currency="TZS", funding_goal=Decimal("1000000"))


@pytest.fixture
def prompts(azam):
    """AzamPay accepts every push, each with a transaction id of its own: each call is one prompt on a phone."""
    ids = count(1)

    def accept(request):
        return 200, {}, json.dumps({**fixture("mno_checkout_success.json"), "transactionId": f"tx-{next(ids)}"})

    azam.add_callback("POST", MNO_URL, callback=accept, content_type="application/json")
    return SimpleNamespace(calls=CallsTo(azam, MNO_URL))


class CallsTo:
    def __init__(self, mock, url: str):
        self.mock, self.url = mock, url

    def __len__(self) -> int:
        return sum(1 for call in self.mock.calls if call.request.url == self.url)


def api_from(ip: str) -> APIClient:
    return APIClient(REMOTE_ADDR=ip)


def donate_api(client, phone: str = PHONE, **headers):
    body = {
        "patient": "PAT-0042",
        "amount": "5000",
        "currency": "TZS",
        "provider": "azampay",
        "channel": "Mpesa",
        "phone_number": phone,
    }
    return client.post(DONATIONS_URL, body, format="json", **headers)


def donate_form(client, phone: str = PHONE):
    body = {"amount": "5000", "method": "azampay:Mpesa", "phone_number": phone, "name": "Neema"}
    return client.post("/patients/PAT-0042/", body)


def assert_throttled_json(response, limit: int):
    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "RATE_LIMIT_EXCEEDED"
    assert set(body) >= {"error", "message", "code", "retry_after"}
    assert 1 <= body["retry_after"] <= 60
    assert response["Retry-After"] == str(body["retry_after"])
    assert response["X-RateLimit-Limit"] == str(limit)
    assert response["X-RateLimit-Remaining"] == "0"
    assert int(response["X-RateLimit-Reset"]) > 0


# --- payment prompts -------------------------------------------------------------------------------------


def test_payment_prompts_are_limited_per_client_and_the_api_and_portal_share_the_count(patient, prompts, settings):
    settings.DONATE_RATE_LIMIT_PER_MINUTE = 3
    settings.DONATE_PHONE_RATE_LIMIT_PER_MINUTE = 100
    api, portal = api_from("198.51.100.7"), Client(REMOTE_ADDR="198.51.100.7")
    assert donate_api(api, "0712345601").status_code == 201
    assert donate_api(api, "0712345602").status_code == 201
    assert donate_form(portal, "0712345603").status_code == 302

    over = donate_api(api, "0712345604")
    assert_throttled_json(over, limit=3)
    assert "your connection" in over.json()["message"]
    page = donate_form(portal, "0712345605")
    assert page.status_code == 429
    assert "Too many donation attempts from your connection" in page.content.decode()
    assert page["Retry-After"] and page["X-RateLimit-Limit"] == "3"
    assert Donation.objects.count() == 3 and len(prompts.calls) == 3  # nothing created, nobody prompted

    assert donate_api(api_from("198.51.100.8"), "0712345606").status_code == 201  # another client is not held


def test_payment_prompts_to_one_phone_are_limited_whoever_asks(patient, prompts, settings):
    """Push-prompt bombing: 25 prompts to one phone in 1.6 s from one client (issue 18) — or from many."""
    settings.DONATE_PHONE_RATE_LIMIT_PER_MINUTE = 3
    answers = [donate_api(api_from(f"203.0.113.{n}")).status_code for n in range(1, 6)]
    assert answers == [201, 201, 201, 429, 429]
    page = donate_form(Client(REMOTE_ADDR="203.0.113.50"))
    assert page.status_code == 429
    assert "This phone was sent several payment requests" in page.content.decode()
    assert len(prompts.calls) == 3
    assert donate_api(api_from("203.0.113.9"), "0712345699").status_code == 201  # another phone is not held


def test_a_refused_prompt_is_not_kept_with_its_idempotency_key(patient, prompts, settings):
    """The 429 is not the request's answer: once the window is over, the same key and body start the payment."""
    settings.DONATE_PHONE_RATE_LIMIT_PER_MINUTE = 1
    assert donate_api(api_from("192.0.2.1")).status_code == 201
    client = api_from("192.0.2.2")
    assert donate_api(client, HTTP_IDEMPOTENCY_KEY="k-1").status_code == 429

    cache.clear()  # the minute has passed
    retry = donate_api(client, HTTP_IDEMPOTENCY_KEY="k-1")
    assert retry.status_code == 201, retry.json()
    assert donate_api(client, HTTP_IDEMPOTENCY_KEY="k-1").json() == retry.json()  # the replay costs no prompt
    assert len(prompts.calls) == 2


def test_a_form_that_fails_its_checks_prompts_nobody_and_is_not_counted(patient, prompts, settings):
    settings.DONATE_RATE_LIMIT_PER_MINUTE = 1
    client = Client(REMOTE_ADDR="192.0.2.10")
    for _ in range(3):
        assert donate_form(client, "1").status_code == 200  # an invalid phone: shown again with its error
    assert donate_form(client).status_code == 302


@pytest.fixture
def cache_down(settings):
    """Redis as CACHE_URL, with nothing listening: every cache call raises a ConnectionError."""
    working = settings.CACHES
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    yield
    settings.CACHES = working  # before the other fixtures clear the cache on their way out


def test_with_the_cache_down_prompts_are_still_limited_in_each_process(patient, prompts, settings, caplog, cache_down):
    """Fail over, not open: a cache outage neither stops donations nor leaves a phone unprotected."""
    settings.DONATE_PHONE_RATE_LIMIT_PER_MINUTE = 2
    answers = [donate_api(api_from(f"203.0.113.{n}")).status_code for n in range(1, 4)]
    assert answers == [201, 201, 429]
    assert "counted in this process only: cache unavailable" in caplog.text


# --- sign-in, registration, status: one count per client per door --------------------------------------


def test_sign_in_attempts_are_limited_per_client_across_the_api_the_portal_and_the_admin(settings, db):
    settings.LOGIN_RATE_LIMIT_PER_MINUTE = 3
    ip = "198.51.100.20"
    api, browser = api_from(ip), Client(REMOTE_ADDR=ip)
    wrong = {"username": "nobody", "password": "wrong"}
    assert api.post("/api/v1.0/auth/token/", wrong, format="json").status_code == 401
    assert browser.post("/login/", wrong).status_code == 200
    assert browser.post("/admin/login/", wrong).status_code == 200

    assert_throttled_json(api.post("/api/v1.0/auth/token/", wrong, format="json"), limit=3)
    page = browser.post("/login/", wrong)
    assert page.status_code == 429 and "Too many sign-in attempts" in page.content.decode()
    assert page["Retry-After"]
    assert browser.post("/admin/login/", wrong).status_code == 429
    assert browser.get("/login/").status_code == 200  # reading the form is not an attempt
    other = api_from("198.51.100.21").post("/api/v1.0/auth/token/", wrong, format="json")
    assert other.status_code == 401


def test_registrations_are_limited_per_client_across_the_api_and_the_portal(settings, db):
    settings.REGISTER_RATE_LIMIT_PER_MINUTE = 2
    ip = "198.51.100.30"
    api, browser = api_from(ip), Client(REMOTE_ADDR=ip)

    def account(n: int) -> dict:
        return {"username": f"donor{n}", "email": f"donor{n}@example.org", "password": "Kilimanjaro-2026"}

    assert api.post("/api/v1.0/donors/register/", account(1), format="json").status_code < 300
    form = account(2)
    assert browser.post("/signup/", form).status_code in (200, 302)

    assert_throttled_json(api.post("/api/v1.0/donors/register/", account(3), format="json"), limit=2)
    page = browser.post("/signup/", {**form, "username": "donor4", "email": "donor4@example.org"})
    assert page.status_code == 429 and "Too many accounts" in page.content.decode()
    from django.contrib.auth import get_user_model

    assert set(get_user_model().objects.values_list("username", flat=True)) == {"donor1", "donor2"}


def test_donation_status_reads_are_limited_per_client_across_the_api_and_the_page(settings, db):
    settings.STATUS_RATE_LIMIT_PER_MINUTE = 3
    donation = DonationFactory()
    ip = "198.51.100.40"
    api, browser = api_from(ip), Client(REMOTE_ADDR=ip)
    first = api.get(f"/api/v1.0/donors/donations/{donation.public_token}/status/")
    assert first.status_code == 200
    assert (first["X-RateLimit-Limit"], first["X-RateLimit-Remaining"]) == ("3", "2")
    assert browser.get(f"/donations/{donation.public_token}/").status_code == 200
    assert browser.get(f"/donations/{donation.public_token}/panel/").status_code == 200

    assert_throttled_json(api.get(f"/api/v1.0/donors/donations/{donation.public_token}/status/"), limit=3)
    assert api.get("/api/v1.0/donors/donations/RHCI-DN-999-20260101000000/status/").status_code == 429  # guessing
    page = browser.get(f"/donations/{donation.public_token}/")
    assert page.status_code == 429 and "Too many status requests" in page.content.decode()
    assert browser.get(f"/donations/{donation.public_token}/panel/").status_code == 429
    other = api_from("198.51.100.41")
    assert other.get(f"/api/v1.0/donors/donations/{donation.public_token}/status/").status_code == 200
    assert Payment.objects.count() == 0
