"""What the API and the portal accept as a request body: JSON only on the API (415 otherwise), and never more
than DATA_UPLOAD_MAX_MEMORY_SIZE (413 in the error shape, one warning line, no traceback)."""

import logging
from http import HTTPStatus

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

LIMIT = 2_621_440  # Django's DATA_UPLOAD_MAX_MEMORY_SIZE default, 2.5 MiB
BIG = b'{"message": "' + b"x" * (LIMIT + 10) + b'"}'

API_POSTS = [
    "/api/v1.0/donors/donations/",
    "/api/v1.0/donors/register/",
    "/api/v1.0/auth/token/",
    "/api/v1.0/auth/token/refresh/",
]


@pytest.mark.parametrize("path", API_POSTS)
def test_an_api_body_over_the_limit_is_a_413_in_the_error_shape_with_one_warning_and_no_traceback(
    client: Client, path, caplog
):
    caplog.set_level(logging.INFO)
    response = client.post(path, data=BIG, content_type="application/json")

    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == "PAYLOAD_TOO_LARGE"
    assert body["error"] == HTTPStatus(413).phrase
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].levelno == logging.WARNING
    assert records[0].exc_info is None
    assert "too large" in records[0].getMessage()


@pytest.mark.parametrize("path", ["/signup/", "/login/", "/general-fund/"])
def test_a_portal_form_over_the_limit_is_a_413_page_with_one_warning(client: Client, path, caplog):
    caplog.set_level(logging.INFO)
    form = b"message=" + b"x" * (LIMIT + 10)
    response = client.post(path, data=form, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 413
    assert response.headers["Content-Type"].startswith("text/html")
    assert b"too much to send" in response.content
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].exc_info is None


def test_a_multipart_form_whose_fields_are_over_the_limit_is_a_413_page_too(client: Client, caplog):
    """Multipart is left to Django (uploaded files do not count against the limit); its refusal of the fields is
    turned from a 400 with a traceback in the log into the same 413 and one warning."""
    caplog.set_level(logging.INFO)
    response = client.post("/signup/", data={"username": "x" * (LIMIT + 10)})

    assert response.status_code == 413
    assert b"too much to send" in response.content
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].exc_info is None


def test_a_body_under_the_limit_is_read_as_usual(client: Client):
    response = client.post("/api/v1.0/donors/donations/", data=b"{}", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize("path", API_POSTS)
@pytest.mark.parametrize(
    "content_type, data",
    [
        ("application/x-www-form-urlencoded", b"patient=PAT-0001&amount=5000&currency=TZS"),
        ("multipart/form-data; boundary=B", b'--B\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--B--\r\n'),
        ("text/plain", b'{"patient": "PAT-0001"}'),
    ],
    ids=["form", "multipart", "text-plain"],
)
def test_the_api_refuses_a_body_that_is_not_json_with_415(client: Client, path, content_type, data):
    """What a cross-site HTML form can send without a preflight (form, multipart, text/plain) is refused."""
    response = client.post(path, data=data, content_type=content_type)

    assert response.status_code == 415
    body = response.json()
    assert body["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert set(body) >= {"error", "message", "code"}
