"""Monthly pledges with a moved clock: one reminder and one prompt per month however often the run repeats;
skip, pause, resume, change, cancel by the signed link (which acts on its own pledge only); re-prompts by outcome;
lapse after three missed months; a fully funded patient's month goes to the general fund. The rail's far side
is AzamPay mocked with `responses` (its real checkout answer), SMS Africa's Talking's."""

import itertools
import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
import responses
from django.core import mail, signing
from django.core.management import CommandError, call_command
from django.test import Client

from donor.models import Donation, SmsMessage
from patients.tests.factories import PatientFactory
from payments.models import Payment
from payments.services.donations import DonationRequest
from payments.tests.azampay_fakes import MNO_URL, TOKEN_URL, fixture
from payments.tests.helpers import run_together
from pledges.models import Pledge, PledgeCycle
from pledges.run import pledges_run
from pledges.services import pledge_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("azampay_settings", "sms")]
TZ = ZoneInfo("Africa/Dar_es_Salaam")
AT_URL = "https://api.sandbox.africastalking.com/version1/messaging"
PLEDGES_URL = "/api/v1.0/donors/pledges/"
TODAY = date(2026, 3, 1)
DUE = date(2026, 3, 10)
ids = itertools.count(1)


def at(day: date, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=TZ)


@pytest.fixture
def sms(settings):
    settings.SMS_GATEWAY = "africastalking"
    settings.AFRICASTALKING_API_KEY = "k"
    settings.AFRICASTALKING_API_URL = "https://api.sandbox.africastalking.com"
    settings.SITE_URL = "https://donate.example.org"
    settings.PLEDGE_PROMPT_HOURS = (8, 20)


@pytest.fixture
def far_side():
    """AzamPay (a new transactionId per checkout) and Africa's Talking."""

    def checkout(request):
        return 200, {}, json.dumps({**fixture("mno_checkout_success.json"), "transactionId": f"pledge{next(ids):026x}"})

    def sent(request):
        body = {"SMSMessageData": {"Message": "Sent to 1/1", "Recipients": [
            {"statusCode": 101, "number": "+255712345678", "status": "Success", "cost": "TZS 20",
             "messageId": f"ATXid_{next(ids)}"}]}}  # fmt: skip
        return 201, {}, json.dumps(body)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, json=fixture("token_success.json"))
        mock.add_callback(responses.POST, MNO_URL, callback=checkout)
        mock.add_callback(responses.POST, AT_URL, callback=sent)
        yield mock


@pytest.fixture
def patient():
    return PatientFactory(code="PAT-0042", currency="TZS", funding_goal=Decimal("1000000"))


def request_body(target, /, **fields) -> dict:
    return {"patient": target.code if target else None, "amount": "5000", "currency": "TZS",
            "provider": "azampay", "channel": "Mpesa", "phone_number": "0712345678",
            "email": "neema@example.org", "name": "Neema", "day_of_month": 10, **fields}  # fmt: skip


def make_pledge(patient, **fields) -> Pledge:
    body = request_body(patient, **fields)
    day = body.pop("day_of_month")
    body.pop("patient")
    request = DonationRequest(patient_code=patient.code if patient else None, **{
        k: Decimal(v) if k == "amount" else v for k, v in body.items()})  # fmt: skip
    return pledge_create(request, day_of_month=day, user=None, today=TODAY)


def donations(pledge) -> list[Donation]:
    return list(Donation.objects.filter(message=f"Monthly pledge {pledge.reference}").order_by("pk"))


def sms_texts() -> list[str]:
    return list(SmsMessage.objects.order_by("pk").values_list("text", flat=True))


def settle(donation: Donation, status: str) -> None:
    """The payment's outcome as the callback handling leaves it."""
    Payment.objects.filter(donation=donation).update(status=status)
    donation_status = "completed" if status == Payment.Status.SUCCEEDED else status
    Donation.objects.filter(pk=donation.pk).update(status=donation_status)


def manage_token(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[1]


# --- creating ------------------------------------------------------------------------------------------------


def test_the_api_creates_an_active_pledge_with_its_next_due_date_and_a_signed_manage_link(api_client, patient):
    response = api_client.post(PLEDGES_URL, request_body(patient), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "active" and body["reference"].startswith("PLG-")
    pledge = Pledge.objects.get()
    assert body["next_due_on"] == pledge.next_due_on.isoformat() and pledge.next_due_on.day == 10
    assert body["manage_url"].startswith("https://donate.example.org/pledges/manage/")
    assert Client().get(body["manage_url"].removeprefix("https://donate.example.org")).status_code == 200
    assert pledge.msisdn == "255712345678" and pledge.donor.user is None


def test_a_jwt_attaches_the_pledge_to_the_account(auth_client, donor_user, patient):
    assert auth_client.post(PLEDGES_URL, request_body(patient), format="json").status_code == 201
    assert Pledge.objects.get().donor.user == donor_user


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"day_of_month": 29}, "day_of_month"), ({"day_of_month": "x"}, "day_of_month"),
     ({"patient": "NOPE"}, "patient"), ({"amount": "1"}, "amount"), ({"phone_number": "12"}, "phone_number"),
     ({"provider": "paypal"}, "provider"), ({"currency": "KES"}, "currency")],
)  # fmt: skip
def test_bad_input_is_a_400_in_the_error_shape_naming_the_field(api_client, patient, fields, field):
    response = api_client.post(PLEDGES_URL, request_body(patient, **fields), format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR" and field in body["errors"]
    assert not Pledge.objects.exists()


# --- the monthly run -----------------------------------------------------------------------------------------


def test_three_runs_send_one_reminder_with_the_manage_link_and_start_one_donation(patient, far_side):
    pledge = make_pledge(patient)
    assert pledge.next_due_on == DUE
    for _ in range(3):
        pledges_run(at(DUE - timedelta(days=3)))
    assert sms_texts() == []  # three days before: nothing yet
    for _ in range(3):
        pledges_run(at(DUE - timedelta(days=2)))
    [reminder] = sms_texts()
    assert "/pledges/manage/" in reminder and len(reminder) <= 160
    assert reminder.split()[-1].endswith("/") and "TSh 5,000" in reminder
    assert len([m for m in mail.outbox if "is due" in m.subject]) == 1
    for _ in range(3):
        pledges_run(at(DUE, 9))
    [donation] = donations(pledge)
    assert donation.amount == Decimal("5000") and donation.patient == patient and donation.donor == pledge.donor
    assert len([c for c in far_side.calls if c.request.url == MNO_URL]) == 1
    settle(donation, Payment.Status.SUCCEEDED)
    pledges_run(at(DUE, 12))
    pledge.refresh_from_db()
    assert PledgeCycle.objects.get(due_on=DUE).status == "paid"
    assert pledge.next_due_on == date(2026, 4, 10) and pledge.consecutive_misses == 0


def test_no_prompt_outside_daytime_hours(patient, far_side):
    pledge = make_pledge(patient)
    pledges_run(at(DUE, 6))
    pledges_run(at(DUE, 21))
    assert donations(pledge) == []
    pledges_run(at(DUE, 8))
    assert len(donations(pledge)) == 1


def test_a_prompt_that_timed_out_is_sent_again_after_two_hours_and_the_next_day_then_missed(patient, far_side):
    pledge = make_pledge(patient)
    pledges_run(at(DUE, 9))
    settle(donations(pledge)[-1], Payment.Status.EXPIRED)
    pledges_run(at(DUE, 10))
    assert len(donations(pledge)) == 1  # not before ~2 hours
    pledges_run(at(DUE, 11, 1))
    assert len(donations(pledge)) == 2
    settle(donations(pledge)[-1], Payment.Status.EXPIRED)
    pledges_run(at(DUE, 15))
    assert len(donations(pledge)) == 2  # the third only the next day
    pledges_run(at(DUE + timedelta(days=1), 9))
    pledges_run(at(DUE + timedelta(days=1), 9))
    assert len(donations(pledge)) == 3
    settle(donations(pledge)[-1], Payment.Status.EXPIRED)
    pledges_run(at(DUE + timedelta(days=1), 18))
    assert len(donations(pledge)) == 3
    pledge.refresh_from_db()
    assert PledgeCycle.objects.get(due_on=DUE).status == "missed" and pledge.consecutive_misses == 1
    assert pledge.next_due_on == date(2026, 4, 10)


@pytest.mark.parametrize("outcome", [Payment.Status.CANCELLED, Payment.Status.FAILED])
def test_a_prompt_the_donor_cancelled_or_refused_is_not_pushed_again_and_a_pay_link_is_sent(patient, far_side, outcome):
    pledge = make_pledge(patient)
    pledges_run(at(DUE, 9))
    settle(donations(pledge)[-1], outcome)
    for hours in (12, 13, 18):
        pledges_run(at(DUE, hours))
    pledges_run(at(DUE + timedelta(days=1), 9))
    assert len(donations(pledge)) == 1
    [link_sms] = [t for t in sms_texts() if "/pledges/pay/" in t]
    pay_path = "/" + link_sms.split("https://donate.example.org/", 1)[1]
    assert Client().post(pay_path).status_code == 200  # the one-tap link prompts once more
    assert len(donations(pledge)) == 2
    Client().post(pay_path)
    assert len(donations(pledge)) == 2  # while that prompt is open, no other


def test_three_missed_months_lapse_the_pledge_with_a_message(patient, far_side):
    pledge = make_pledge(patient)
    due = DUE
    for _ in range(3):
        pledges_run(at(due, 9))
        settle(donations(pledge)[-1], Payment.Status.FAILED)
        pledges_run(at(due + timedelta(days=4), 9))  # the grace days are over: missed
        pledge.refresh_from_db()
        due = pledge.next_due_on
    assert pledge.status == Pledge.Status.LAPSED and pledge.consecutive_misses == 3
    assert any("stopped" in t for t in sms_texts())
    pledges_run(at(due, 9))
    assert len(donations(pledge)) == 3  # a lapsed pledge prompts no more


def test_a_month_due_after_the_patient_is_fully_funded_goes_to_the_general_fund_and_the_donor_is_told(
    patient, far_side
):
    pledge = make_pledge(patient)
    patient.status = "fully_funded"
    patient.save()
    pledges_run(at(DUE, 9))
    [donation] = donations(pledge)
    assert donation.patient is None
    assert PledgeCycle.objects.get().to_general_fund
    assert any("general fund" in t and "PAT-0042" in t for t in sms_texts())


# --- the donor's actions by link -----------------------------------------------------------------------------


def manage(pledge, action: str, token: str | None = None, **fields):
    from pledges.services import manage_token as token_for

    return Client().post(f"/pledges/manage/{token or token_for(pledge)}/", {"action": action, **fields})


def test_skip_skips_one_month_only(patient, far_side):
    pledge = make_pledge(patient)
    assert manage(pledge, "skip").status_code == 200
    pledges_run(at(DUE, 9))
    assert donations(pledge) == []
    pledge.refresh_from_db()
    assert pledge.next_due_on == date(2026, 4, 10) and not pledge.skip_next
    pledges_run(at(date(2026, 4, 10), 9))
    assert len(donations(pledge)) == 1
    assert any("skipped" in t for t in sms_texts())  # each action is confirmed


def test_pause_stops_reminders_and_prompts_and_resume_starts_again(patient, far_side):
    pledge = make_pledge(patient)
    manage(pledge, "pause")
    pledges_run(at(DUE - timedelta(days=2)))
    pledges_run(at(DUE, 9))
    assert donations(pledge) == [] and not any("Reminder" in t for t in sms_texts())
    manage(pledge, "resume")
    pledge.refresh_from_db()
    assert pledge.status == Pledge.Status.ACTIVE


def test_change_applies_from_the_next_prompt_and_is_checked_like_a_donation(patient, far_side):
    pledge = make_pledge(patient)
    assert manage(pledge, "change", amount="abc").status_code == 400
    assert manage(pledge, "change", amount="10").status_code == 400  # below the TZS minimum
    assert manage(pledge, "change", amount="7500").status_code == 200
    pledges_run(at(DUE, 9))
    assert donations(pledge)[0].amount == Decimal("7500")
    assert any("TSh 7,500" in t for t in sms_texts())


def test_cancel_ends_the_pledge(patient, far_side):
    pledge = make_pledge(patient)
    manage(pledge, "cancel")
    pledges_run(at(DUE, 9))
    assert donations(pledge) == []
    assert manage(pledge, "resume").status_code == 400
    assert Pledge.objects.get().status == Pledge.Status.CANCELLED


def test_one_pledges_link_cannot_act_on_another(patient, far_side):
    mine, theirs = make_pledge(patient), make_pledge(patient, phone_number="0712345679")
    from pledges.services import PAY_SALT, manage_token

    token = manage_token(mine)
    forged = signing.dumps(theirs.pk, salt="another-purpose")
    assert manage(theirs, "cancel", token=forged).status_code == 404
    tampered = str(theirs.pk) + token[token.index(":") :]
    assert manage(theirs, "cancel", token=tampered).status_code == 404
    pay_token = signing.dumps(theirs.pk, salt=PAY_SALT)  # a pay link is no manage link
    assert manage(theirs, "cancel", token=pay_token).status_code == 404
    manage(mine, "cancel", token=token)
    theirs.refresh_from_db()
    mine.refresh_from_db()
    assert theirs.status == Pledge.Status.ACTIVE and mine.status == Pledge.Status.CANCELLED


# --- the command ---------------------------------------------------------------------------------------------


def test_the_command_takes_a_date_and_time_and_refuses_bad_ones(patient, far_side):
    pledge = make_pledge(patient)
    out = StringIO()
    call_command("pledges_run", "--date", DUE.isoformat(), "--time", "09:00", stdout=out)
    assert "prompted 1" in out.getvalue() and len(donations(pledge)) == 1
    with pytest.raises(CommandError, match="--date"):
        call_command("pledges_run", "--date", "2026-02-30")
    with pytest.raises(CommandError, match="--time"):
        call_command("pledges_run", "--time", "25:00")


@pytest.mark.mysql
def test_concurrent_runs_on_mariadb_start_one_donation_per_month(patient, far_side, is_mysql):
    if not is_mysql:
        pytest.skip("MariaDB only")
    pledges = [make_pledge(patient, phone_number=f"07123456{n:02d}") for n in range(10, 13)]
    run_together([lambda: pledges_run(at(DUE, 9)) for _ in range(4)])
    assert [len(donations(p)) for p in pledges] == [1, 1, 1]
    run_together([lambda: call_command("pledges_run", "--date", DUE.isoformat(), "--time", "11:30",
                                       stdout=StringIO()) for _ in range(3)])  # fmt: skip
    assert [len(donations(p)) for p in pledges] == [1, 1, 1]
