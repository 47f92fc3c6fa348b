import pytest

from donor.models import Donor
from donor.tests.factories import DonationFactory, DonorFactory

pytestmark = pytest.mark.django_db


def test_register_then_obtain_and_refresh_a_token(api_client):
    response = api_client.post(
        "/api/v1.0/donors/register/",
        {
            "username": "neema",
            "password": "Kilimanjaro-2026",
            "email": "neema@example.org",
            "name": "Neema",
            "phone_number": "0754 123 456",
        },
        format="json",
    )
    assert response.status_code == 202, response.json()  # the same answer had the account existed (test_registration)
    assert Donor.objects.get(user__username="neema").phone == "255754123456"
    pair = api_client.post(
        "/api/v1.0/auth/token/", {"username": "neema", "password": "Kilimanjaro-2026"}, format="json"
    ).json()
    assert {"access", "refresh"} <= set(pair)
    refreshed = api_client.post("/api/v1.0/auth/token/refresh/", {"refresh": pair["refresh"]}, format="json")
    assert refreshed.status_code == 200 and {"access", "refresh"} <= set(refreshed.json())  # rotated (test_tokens)


def test_register_rejects_bad_input_with_field_errors(api_client, donor_user):
    response = api_client.post(
        "/api/v1.0/donors/register/",
        {"username": "amani", "password": "123", "email": "not-an-email", "phone_number": "12"},
        format="json",
    )
    body = response.json()
    assert response.status_code == 400
    assert body["code"] == "VALIDATION_ERROR" and "email" in body["errors"]
    response = api_client.post(
        "/api/v1.0/donors/register/",
        {"username": "amani", "password": "123", "email": "x@example.org", "phone_number": "12"},
        format="json",
    )
    assert set(response.json()["errors"]) == {"password", "phone_number"}  # "amani" is taken: not said


def test_wrong_credentials_are_a_json_401(api_client):
    response = api_client.post("/api/v1.0/auth/token/", {"username": "x", "password": "y"}, format="json")
    assert response.status_code == 401 and response.json()["code"] == "AUTH_REQUIRED"


def test_my_donations_needs_a_token(api_client):
    response = api_client.get("/api/v1.0/donors/me/donations/")
    assert response.status_code == 401
    assert response.json()["code"] == "AUTH_REQUIRED"


def test_my_donations_lists_only_mine(auth_client, donor_user):
    mine = DonationFactory(donor=donor_user.donor)
    DonationFactory(donor=DonorFactory())
    body = auth_client.get("/api/v1.0/donors/me/donations/").json()
    assert [d["reference"] for d in body["results"]] == [mine.reference]
