"""Whoever does not hold a donation's link cannot find or read it (issue 18, item 2).

The public handle is the donation's `public_token` (192 random bits); the sequential reference (id + creation
second, guessable) still names the donation to providers and staff, but by reference the status API, the refresh
and the portal's status page answer only the donor — its account signed in (JWT or session), or the browser that
made it — and staff who may view donations; anyone else gets the same 404 as for a donation that does not exist.
"""

import base64
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from config.tests.log_files import log_files
from donor.models import Donation, Donor
from donor.tests.factories import DonorFactory
from patients.tests.factories import PatientFactory
from payments.tests.azampay_fakes import MNO_URL, fixture
from payments.tests.factories import PaymentFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("azampay_settings")]

API = "/api/v1.0/donors/donations/"
SECRETS = ("transactionId", "receipt")


@pytest.fixture
def owner() -> User:
    return User.objects.create_user("owner", password="x")


@pytest.fixture
def completed(owner) -> Donation:
    """A completed donation with its provider id and receipt: what the issue found in 28 guesses."""
    payment = PaymentFactory(
        donation__donor=DonorFactory(user=owner),
        donation__status=Donation.Status.COMPLETED,
        status="succeeded",
        receipt="MPX123RCPT",
    )
    return payment.donation


def jwt_client(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


def staff(*, may_view: bool) -> User:
    user = User.objects.create_user("staffer", password="x", is_staff=True)
    if may_view:
        user.user_permissions.add(Permission.objects.get(codename="view_donation", content_type__app_label="donor"))
    return User.objects.get(pk=user.pk)


def read(client, path: str):
    return client.post(path) if path.endswith("/refresh/") else client.get(path)


ENDPOINTS = ["status", "refresh"]


def test_the_public_token_carries_at_least_128_random_bits_and_differs_per_donation(completed):
    others = [PaymentFactory().donation.public_token for _ in range(5)]
    tokens = {completed.public_token, *others}
    assert len(tokens) == 6
    for token in tokens:
        assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) >= 16
        assert completed.reference not in token


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_anyone_holding_the_link_reads_the_donation(completed, endpoint):
    response = read(APIClient(), f"{API}{completed.public_token}/{endpoint}/")
    assert response.status_code == 200
    body = response.json()
    assert body["reference"] == completed.reference and body["receipt"] == "MPX123RCPT" and body["transactionId"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    "who", ["anonymous", "another-donor", "staff-without-permission"], ids=lambda w: w.replace("_", "-")
)
def test_by_its_guessable_reference_nobody_but_the_donor_and_staff_finds_it(completed, endpoint, who):
    client = {
        "anonymous": APIClient,
        "another-donor": lambda: jwt_client(User.objects.create_user("other", password="x")),
        "staff-without-permission": lambda: jwt_client(staff(may_view=False)),
    }[who]()
    response = read(client, f"{API}{completed.reference}/{endpoint}/")

    assert response.status_code == 404  # the same answer as for a donation that does not exist
    unknown = read(client, f"{API}RHCI-DN-999999-20260101000000/{endpoint}/")
    assert response.json() == unknown.json()
    assert not any(secret in response.json() for secret in SECRETS)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("who", ["owner", "staff"])
def test_by_reference_the_donors_own_jwt_and_staff_still_read_it(completed, owner, endpoint, who):
    client = jwt_client(owner if who == "owner" else staff(may_view=True))
    response = read(client, f"{API}{completed.reference}/{endpoint}/")
    assert response.status_code == 200 and response.json()["receipt"] == "MPX123RCPT"


def test_walking_the_sequence_of_references_finds_nothing():
    """The issue's attack: references are {prefix}-DN-{id}-{creation second}; guess them in order."""
    donations = [PaymentFactory(donation__status=Donation.Status.COMPLETED).donation for _ in range(5)]
    client = APIClient()
    answers = [client.get(f"{API}{d.reference}/status/").status_code for d in donations]
    answers += [client.get(f"/donations/{d.reference}/").status_code for d in donations]
    assert answers == [404] * 10


@pytest.mark.parametrize("suffix", ["", "panel/"], ids=["page", "panel"])
def test_the_portal_page_by_reference_is_the_donors_and_staffs_only(completed, owner, suffix):
    path = f"/donations/{completed.reference}/{suffix}"
    assert Client().get(path).status_code == 404
    stranger = Client()
    stranger.force_login(User.objects.create_user("stranger", password="x"))
    assert stranger.get(path).status_code == 404

    signed_in = Client()
    signed_in.force_login(owner)
    assert signed_in.get(path).status_code == 200
    admin = Client()
    admin.force_login(staff(may_view=True))
    assert admin.get(path).status_code == 200
    assert Client().get(f"/donations/{completed.public_token}/{suffix}").status_code == 200


def test_the_create_answer_gives_the_donor_the_link_and_keeps_every_field(api_client, azam, settings):
    azam.post(MNO_URL, json=fixture("mno_checkout_success.json"))
    patient = PatientFactory(currency="TZS", funding_goal=Decimal("1000000"))
    request = {
        "patient": patient.code,
        "amount": "5000",
        "currency": "TZS",
        "provider": "azampay",
        "channel": "Mpesa",
        "phone_number": "0712345678",
    }
    body = api_client.post(API, request, format="json").json()

    donation = Donation.objects.get()
    assert {"id", "reference", "status", "amount", "currency", "patient", "payment", "next_action"} <= set(body)
    assert body["reference"] == donation.reference
    assert body["public_token"] == donation.public_token
    assert body["status_url"] == f"{settings.SITE_URL}/donations/{donation.public_token}/"
    assert APIClient().get(f"{API}{body['public_token']}/status/").json()["status"] == "pending"


def test_the_portal_sends_the_donor_to_the_link_and_the_browser_that_donated_may_use_the_reference(client, azam):
    azam.post(MNO_URL, json=fixture("mno_checkout_success.json"))
    patient = PatientFactory(currency="TZS", funding_goal=Decimal("1000000"), code="PAT-0001")
    form = {"amount": "5000", "method": "azampay:Mpesa", "phone_number": "0712345678", "name": "Asha"}
    response = client.post(f"/patients/{patient.code}/", form)

    donation = Donation.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/donations/{donation.public_token}/"
    html = client.get(response["Location"]).content.decode()
    assert f"/api/v1.0/donors/donations/{donation.public_token}/status/" in html  # the page polls by the token
    assert donation.reference in html  # shown to the donor for their records
    assert client.get(f"/donations/{donation.reference}/").status_code == 200  # this browser made it
    assert Client().get(f"/donations/{donation.reference}/").status_code == 404


def test_a_token_differing_only_in_case_opens_nothing(completed):
    swapped = completed.public_token.swapcase()
    if swapped == completed.public_token:
        pytest.skip("a token without letters")
    assert APIClient().get(f"{API}{swapped}/status/").status_code == 404


def test_receipts_link_to_the_token(completed, mailoutbox, settings):
    from donor.notifications import donation_notify

    Donor.objects.filter(pk=completed.donor_id).update(email="donor@example.org")
    donation_notify.call(completed.pk, "M-Pesa")
    (mail,) = mailoutbox
    assert f"/donations/{completed.public_token}/" in mail.body
    assert f"/donations/{completed.reference}/" not in mail.body


def test_the_donors_link_never_reaches_a_log_file(completed, settings):
    """A 4xx is logged with its path by Django's request logger (here a 405 on the status path)."""
    import logging

    assert APIClient().delete(f"{API}{completed.public_token}/status/").status_code == 405
    for handler in logging.getLogger().handlers + logging.getLogger("payments").handlers:
        handler.flush()
    text = "\n".join(p.read_text(errors="replace") for p in log_files())
    assert "/donations/***/status/" in text
    assert completed.public_token not in text
