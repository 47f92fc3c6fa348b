"""The portal's "Give monthly": a pledge through the pledge API's own service, its manage link on the page that
follows, and the account's list of pledges."""

import re
from decimal import Decimal

import pytest
from django.test import Client

from donor.tests.factories import DonorFactory
from patients.tests.factories import PatientFactory
from pledges.models import Pledge
from pledges.services import pledge_for_token

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("azampay_settings")]


@pytest.fixture
def patient():
    return PatientFactory(code="PAT-0007", name="Zuhura Ali", currency="TZS", funding_goal=Decimal("900000"))


def linked_pledge(page: str) -> Pledge | None:
    """The pledge the page's manage link opens (the link is signed with a timestamp: not comparable as text)."""
    [token] = re.findall(r'href="[^"]*/pledges/manage/([^/"]+)/"', page)
    return pledge_for_token(token)


def monthly(**fields) -> dict:
    return {"amount": "10000", "method": "azampay:Mpesa", "phone_number": "0712345678", "monthly": "on",
            "day_of_month": "15", "email": "z@example.org", **fields}  # fmt: skip


def test_give_monthly_makes_a_pledge_and_shows_its_manage_link_without_a_payment_now(client, patient):
    response = client.post("/patients/PAT-0007/", monthly())
    pledge = Pledge.objects.get()
    page = response.content.decode()
    assert response.status_code == 201 and "Your monthly pledge is set up" in page
    assert pledge.amount == Decimal("10000") and pledge.day_of_month == 15 and pledge.patient == patient
    assert pledge.msisdn == "255712345678" and pledge.status == Pledge.Status.ACTIVE and pledge.language == "en"
    assert linked_pledge(page) == pledge
    assert "TSh 10,000 for Zuhura on day 15 of each month." in page
    assert not pledge.cycles.exists()  # the first prompt comes on the day, from pledges_run


def test_give_monthly_without_a_day_or_with_a_card_is_refused_on_the_form(client, patient):
    no_day = client.post("/patients/PAT-0007/", monthly(day_of_month=""))
    assert no_day.status_code == 200 and "Choose the day of the month to give on." in no_day.content.decode()
    card = client.post("/patients/PAT-0007/", monthly(method="azampay:card"))
    assert card.status_code == 200 and "Monthly giving uses a mobile money prompt" in card.content.decode()
    assert not Pledge.objects.exists()


def test_the_general_fund_takes_monthly_pledges_too(client):
    response = client.post("/general-fund/?currency=TZS", monthly())
    assert response.status_code == 201 and Pledge.objects.get().patient is None


def test_my_pledges_lists_the_accounts_pledges_with_status_amount_next_date_and_link(patient, django_user_model):
    user = django_user_model.objects.create_user(username="zawadi", password="x-Long-enough-9")
    client = Client()
    client.force_login(user)
    client.post("/patients/PAT-0007/", monthly())
    other = DonorFactory()
    Pledge.objects.create(donor=other, msisdn="255712000000", provider="azampay", channel="Mpesa", amount=1,
                          currency="TZS", day_of_month=3, next_due_on="2027-02-03")  # fmt: skip
    pledge = Pledge.objects.get(donor__user=user)
    page = client.get("/my/pledges/").content.decode()
    assert "TSh 10,000 a month" in page and "to Zuhura" in page and "Active" in page
    assert pledge.next_due_on.strftime("%-d %b %Y") in page and linked_pledge(page) == pledge
    assert page.count("Manage this pledge") == 1  # not the other donor's
    assert 'href="/my/pledges/"' in client.get("/my/donations/").content.decode()  # the account nav links it


def test_my_pledges_needs_a_sign_in(client):
    response = client.get("/my/pledges/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
