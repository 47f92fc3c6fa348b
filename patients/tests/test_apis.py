from decimal import Decimal

import pytest

from patients.tests.factories import PatientFactory

pytestmark = pytest.mark.django_db
ERROR_KEYS = {"error", "message", "code"}


def test_patient_list_is_paginated_and_shows_only_published(api_client):
    PatientFactory(code="PAT-0001", funding_goal=Decimal("1000"), funding_received=Decimal("250"))
    PatientFactory(code="PAT-0002", published=False)
    body = api_client.get("/api/v1.0/patients/").json()
    assert body["count"] == 1
    patient = body["results"][0]
    assert {
        "code",
        "name",
        "story",
        "currency",
        "funding_goal",
        "funding_received",
        "funding_percent",
        "status",
    } <= set(patient)
    assert (patient["code"], patient["funding_percent"], patient["status"]) == ("PAT-0001", 25, "funding")


def test_patient_detail_by_code(api_client):
    PatientFactory(code="PAT-0042", currency="KES")
    response = api_client.get("/api/v1.0/patients/PAT-0042/")
    assert response.status_code == 200
    assert response.json()["currency"] == "KES"


def test_unknown_patient_is_a_json_404(api_client):
    response = api_client.get("/api/v1.0/patients/PAT-9999/")
    assert response.status_code == 404
    assert set(response.json()) >= ERROR_KEYS and response.json()["code"] == "NOT_FOUND"


def test_bad_page_number_is_a_json_404(api_client):
    response = api_client.get("/api/v1.0/patients/?page=abc")
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"


@pytest.mark.parametrize("path", ["/api/v1.0/nope/", "/api/nothing", "/webhooks/unknown/"])
def test_unknown_api_paths_answer_json_not_html(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == "NOT_FOUND"


def test_wrong_method_is_a_json_405(api_client):
    response = api_client.delete("/api/v1.0/patients/")
    assert response.status_code == 405 and response.json()["code"] == "METHOD_NOT_ALLOWED"


def test_malformed_json_is_a_json_400(api_client):
    response = api_client.post("/api/v1.0/donors/register/", data=b"{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_FORMAT"


def test_unhandled_exception_is_a_json_500_with_request_id(client, monkeypatch, caplog):
    from payments import patient_apis as apis  # the patient detail view

    def boom(*args, **kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(apis, "patient_get_published", boom)
    client.raise_request_exception = False
    response = client.get("/api/v1.0/patients/PAT-0001/")
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "INTERNAL_ERROR" and body["request_id"].startswith("req_")
    assert "kaboom" not in body["message"]
    assert body["request_id"] in caplog.text


def test_health_reports_database(client):
    body = client.get("/health/").json()
    assert body["status"] == "healthy" and body["database"] == "connected"


def test_openapi_schema_and_swagger_are_served(client):
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200


def test_html_404_for_portal_pages(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and b"could not find" in response.content
