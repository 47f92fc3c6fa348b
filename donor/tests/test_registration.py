"""Registration tells no one who has an account (docs/security.md): a request that is valid in itself gets the same
answer, on the API and in the portal, whether its username or email was free or taken; the email address is told
which, and the donor then signs in."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from rest_framework.test import APIClient

from payments.tests.helpers import run_together

REGISTER_URL = "/api/v1.0/donors/register/"
PASSWORD = "Kilimanjaro-2026"
# donor_user (the root conftest) is "amani" <amani@example.org>
CASES = {
    "free": {"username": "neema", "email": "neema@example.org"},
    "username taken": {"username": "AMANI", "email": "neema@example.org"},
    "email taken": {"username": "neema", "email": "Amani@Example.org"},
}


def register_api(**fields):
    return APIClient().post(REGISTER_URL, {**fields, "password": PASSWORD}, format="json")


@pytest.mark.django_db
@pytest.mark.parametrize("case", list(CASES))
def test_the_api_answers_the_same_whoever_has_an_account(donor_user, case):
    free = register_api(username="zawadi", email="zawadi@example.org")
    response = register_api(**CASES[case])

    assert (response.status_code, response.json()) == (free.status_code, free.json())
    assert response.status_code == 202
    assert "If this username and email address were free" in response.json()["message"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "case, subject, created",
    [
        ("free", "Your donor account is ready", True),
        ("username taken", "Choose another username", False),
        ("email taken", "You already have a donor account", False),
    ],
)
def test_the_email_address_is_told_what_happened(donor_user, case, subject, created):
    mail.outbox.clear()
    register_api(**CASES[case])

    (message,) = mail.outbox
    assert message.to == [CASES[case]["email"]] and message.subject == subject
    assert get_user_model().objects.filter(username="neema").exists() is created
    assert get_user_model().objects.get(username="amani").email == "amani@example.org"  # never touched


@pytest.mark.django_db
@pytest.mark.parametrize("case", list(CASES))
def test_the_portal_shows_the_same_page_whoever_has_an_account(donor_user, case):
    def signup(username: str, email: str):
        client = Client()
        response = client.post("/signup/", {"username": username, "email": email, "password": PASSWORD})
        return response, client

    free, _ = signup("zawadi", "zawadi@example.org")
    response, client = signup(**CASES[case])

    assert response.status_code == free.status_code == 200

    def same(html: str, email: str) -> str:  # a CSRF token (the language switch's form) is each browser's own
        return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "CSRF", html.replace(email, "EMAIL"))

    page = same(response.content.decode(), CASES[case]["email"])
    assert page == same(free.content.decode(), "zawadi@example.org")
    assert "Check your email" in page
    assert "_auth_user_id" not in client.session  # not signed in on any path: that would tell too


@pytest.mark.django_db
def test_what_is_wrong_with_the_request_itself_is_still_said(donor_user):
    response = APIClient().post(
        REGISTER_URL,
        {"username": "amani", "email": "x@example.org", "phone_number": "12", "password": "123"},
        format="json",
    )
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"password", "phone_number"}  # and nothing about "amani"
    html = Client().post("/signup/", {"username": "amani", "email": "new@example.org", "password": "123"}).content
    assert b"This password is too short" in html and b"taken" not in html


@pytest.mark.mysql
@pytest.mark.django_db(transaction=True)
def test_two_registrations_racing_for_one_username_make_one_account_and_the_same_answer():
    answers = run_together(
        [lambda n=n: register_api(username="baraka", email=f"b{n}@example.org").status_code for n in range(3)]
    )
    assert answers == [202, 202, 202]
    assert get_user_model().objects.filter(username="baraka").count() == 1
