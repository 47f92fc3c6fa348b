"""API tokens that can be taken back (donor/tokens.py, docs/security.md "API tokens"): a refresh token is used once
and rotates; a logout or a password change revokes every access and refresh token issued before it."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from payments.tests.helpers import run_together

TOKEN_URL = "/api/v1.0/auth/token/"
REFRESH_URL = "/api/v1.0/auth/token/refresh/"
LOGOUT_URL = "/api/v1.0/donors/logout/"
ME_URL = "/api/v1.0/donors/me/donations/"
PASSWORD = "S3cure-pass-123"  # the root conftest's donor_user


def sign_in(password: str = PASSWORD) -> dict:
    response = APIClient().post(TOKEN_URL, {"username": "amani", "password": password}, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def refresh(token: str):
    return APIClient().post(REFRESH_URL, {"refresh": token}, format="json")


def me(access: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client.get(ME_URL)


def logout(access: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client.post(LOGOUT_URL)


@pytest.mark.django_db
def test_a_refresh_token_rotates_and_is_good_for_one_refresh_only(donor_user):
    pair = sign_in()
    first = refresh(pair["refresh"])
    assert first.status_code == 200
    rotated = first.json()
    assert set(rotated) == {"access", "refresh"} and rotated["refresh"] != pair["refresh"]

    again = refresh(pair["refresh"])  # a stolen copy of the used token
    assert again.status_code == 401
    assert again.json()["code"] == "AUTH_REQUIRED"
    assert refresh(rotated["refresh"]).status_code == 200  # the new one works, once
    assert me(rotated["access"]).status_code == 200


@pytest.mark.django_db
def test_logout_revokes_every_access_and_refresh_token_issued_before_it(donor_user):
    phone, laptop = sign_in(), sign_in()
    assert me(phone["access"]).status_code == 200

    response = logout(phone["access"])
    assert response.status_code == 204

    for pair in (phone, laptop):  # signed out everywhere, before any token expired
        refused = me(pair["access"])
        assert refused.status_code == 401 and refused.json()["code"] == "AUTH_REQUIRED"
        assert refresh(pair["refresh"]).status_code == 401
    fresh = sign_in()  # in the same second as the logout: a counter, not a clock, decides
    assert me(fresh["access"]).status_code == 200
    assert refresh(fresh["refresh"]).status_code == 200


@pytest.mark.django_db
def test_logout_needs_a_valid_token(donor_user):
    response = APIClient().post(LOGOUT_URL)
    assert response.status_code == 401 and response.json()["code"] == "AUTH_REQUIRED"


@pytest.mark.django_db
def test_a_password_change_revokes_every_token_issued_before_it(donor_user):
    before = sign_in()
    user = get_user_model().objects.get(pk=donor_user.pk)
    user.set_password("An0ther-pass-456")
    user.save()  # what the admin's password form and `changepassword` do

    assert me(before["access"]).status_code == 401
    assert refresh(before["refresh"]).status_code == 401
    after = sign_in("An0ther-pass-456")
    assert me(after["access"]).status_code == 200


@pytest.mark.django_db
def test_saving_the_user_without_a_new_password_revokes_nothing(donor_user):
    pair = sign_in()
    user = get_user_model().objects.get(pk=donor_user.pk)
    user.first_name = "Amani"
    user.save()
    user.save(update_fields=["last_login"])

    assert me(pair["access"]).status_code == 200
    assert refresh(pair["refresh"]).status_code == 200


@pytest.mark.mysql
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_refreshes_with_one_token_make_one_new_pair(donor_user):
    """Single use holds under a race: both requests pass the blacklist check, only one blacklists the token."""
    pair = sign_in()
    answers = run_together([lambda: refresh(pair["refresh"]).status_code] * 4)
    assert sorted(answers) == [200, 401, 401, 401]


@pytest.mark.mysql
@pytest.mark.django_db(transaction=True)
def test_logout_on_mariadb_revokes_tokens_and_a_new_sign_in_works(donor_user):
    pair = sign_in()
    assert logout(pair["access"]).status_code == 204
    assert me(pair["access"]).status_code == 401
    assert refresh(pair["refresh"]).status_code == 401
    assert me(sign_in()["access"]).status_code == 200
