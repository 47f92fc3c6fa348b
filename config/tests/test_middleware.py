"""The short middleware path for provider callbacks (config.middleware.ProviderCallbackMiddleware).

A callback must reach its view without the browser middleware (no session, no CSRF, no login lockout), yet
keep what the full stack gave it: the request id, the ALLOWED_HOSTS check and JSON for every error.
"""

import json

import pytest
from django.test import Client

from payments.models import CallbackEvent

pytestmark = pytest.mark.django_db

CALLBACK = "/api/v1.0/donors/payment/azampay/callback/"


def test_a_callback_is_stored_and_answered_without_the_browser_middleware(client: Client):
    response = client.post(CALLBACK, data=b"{}", content_type="application/json")

    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Request-ID"].startswith("req_")
    # what SessionMiddleware, CsrfViewMiddleware and XFrameOptionsMiddleware would have added
    assert "Set-Cookie" not in response.headers
    assert "Cookie" not in response.headers.get("Vary", "")
    assert "X-Frame-Options" not in response.headers
    assert CallbackEvent.objects.count() == 1  # stored before anything judged it


def test_pages_and_the_donation_api_keep_the_whole_stack(client: Client):
    page = client.get("/")
    assert page.headers["X-Frame-Options"] == "DENY"
    api = client.post("/api/v1.0/donors/donations/", data=b"{}", content_type="application/json")
    assert api.headers["X-Frame-Options"] == "DENY"
    assert api.status_code == 400


def test_a_callback_with_a_host_this_site_does_not_answer_to_gets_json_400(client: Client):
    response = client.post(CALLBACK, data=b"{}", content_type="application/json", HTTP_HOST="evil.example")

    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_FORMAT"
    assert CallbackEvent.objects.count() == 0  # refused before it is stored: not a delivery to us


def test_an_unhandled_error_in_a_callback_view_is_json_500_with_the_request_id(client: Client, monkeypatch, caplog):
    from payments import webhooks

    def broken(**kwargs):
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(webhooks, "callback_record", broken)
    response = client.post(CALLBACK, data=b"{}", content_type="application/json")

    assert response.status_code == 500
    body = json.loads(response.content)
    assert body["code"] == "INTERNAL_ERROR"
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert "the disk is on fire" not in response.content.decode()
    assert any("Unhandled error" in record.getMessage() for record in caplog.records)


def test_a_get_on_a_callback_path_is_still_answered_405_in_json(client: Client):
    response = client.get(CALLBACK)

    assert response.status_code == 405
    assert response.json()["code"] == "METHOD_NOT_ALLOWED"
