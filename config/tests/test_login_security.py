"""Logins that guard money: lockouts after repeated failures (django-axes) on the admin, the donor login and the
API token endpoint; a second factor for payout and refund approvers (django-otp); idle staff sessions end.
docs/security.md says why each rule is what it is."""

import json
import time
from io import StringIO

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import Group, Permission
from django.core.management import CommandError, call_command
from django.test import Client, RequestFactory
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.login_security import lockout_response
from config.staff_sessions import LAST_SEEN_KEY
from config.tests.helpers import login_with_second_factor
from payments.tests.factories import staff_user

pytestmark = pytest.mark.django_db

ADMIN_LOGIN = "/admin/login/"
TOKEN = "/api/v1.0/auth/token/"
DONOR_PASSWORD = "S3cure-pass-123"  # the root conftest's donor_user (amani)


@pytest.fixture
def limit(settings) -> int:
    assert settings.AXES_ENABLED and settings.AXES_FAILURE_LIMIT >= 2
    return settings.AXES_FAILURE_LIMIT


@pytest.fixture
def clerk(db):
    """Staff who approve nothing: password only."""
    user = staff_user("clerk", "payments.view_payment")
    user.set_password("clerk-pass-123")
    user.save()
    return user


def make_approver(username: str, *, via_group: bool = False, permission: str = "approve_payout"):
    user = staff_user(username, "payments.view_payout")
    user.set_password("approver-pass-123")
    user.save()
    perm = Permission.objects.get(content_type__app_label="payments", codename=permission)
    if via_group:
        group = Group.objects.create(name=f"Finance checker {username}")
        group.permissions.add(perm)
        user.groups.add(group)
    else:
        user.user_permissions.add(perm)
    return type(user).objects.get(pk=user.pk)  # an empty permission cache


def current_code(device: TOTPDevice) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    return f"{totp.token():0{device.digits}d}"


def admin_login(client: Client, username: str, password: str, ip: str = "127.0.0.1", **extra):
    data = {"username": username, "password": password, "next": "/admin/", **extra}
    return client.post(ADMIN_LOGIN, data, REMOTE_ADDR=ip)


def signed_in(client: Client) -> bool:
    return SESSION_KEY in client.session


# --- lockouts ----------------------------------------------------------------------------------------------


def test_admin_login_locks_out_after_repeated_failures_and_refuses_the_right_password(client, clerk, limit):
    for _ in range(limit - 1):
        response = admin_login(client, "clerk", "wrong")
        assert response.status_code == 200 and "correct username and password" in response.content.decode()
    response = admin_login(client, "clerk", "wrong")  # the limit-th failure locks
    assert response.status_code == 429

    response = admin_login(client, "clerk", "clerk-pass-123")
    html = response.content.decode()
    assert response.status_code == 429
    assert "Sign-in paused" in html and "Try again after" in html and "Patient donations — operations" in html
    assert 14 * 60 <= int(response["Retry-After"]) <= 15 * 60
    assert not signed_in(client)
    assert client.get("/admin/").status_code == 302  # still the login page


def test_fewer_failures_than_the_limit_do_not_lock(client, clerk, limit):
    for _ in range(limit - 1):
        admin_login(client, "clerk", "wrong")
    response = admin_login(client, "clerk", "clerk-pass-123")
    assert response.status_code == 302 and response["Location"] == "/admin/"


def test_donor_login_locks_out_with_a_page_saying_when_to_retry(client, donor_user, limit):
    for _ in range(limit):
        last = client.post("/login/", {"username": "amani", "password": "wrong"})
    assert last.status_code == 429
    response = client.post("/login/", {"username": "amani", "password": DONOR_PASSWORD})
    html = response.content.decode()
    assert response.status_code == 429 and response["Content-Type"].startswith("text/html")
    assert "Sign-in paused" in html and "Try again after" in html and "give to a patient" in html
    assert not signed_in(client)


def test_api_token_endpoint_locks_out_with_a_json_429_in_the_error_shape(api_client, donor_user, limit):
    for _ in range(limit - 1):
        response = api_client.post(TOKEN, {"username": "amani", "password": "wrong"}, format="json")
        assert response.status_code == 401
    for password in ("wrong", DONOR_PASSWORD):  # the limit-th failure, then the right password
        response = api_client.post(TOKEN, {"username": "amani", "password": password}, format="json")
        assert response.status_code == 429
        assert response["Content-Type"] == "application/json"
        body = response.json()
        assert {"error", "message", "code"} <= body.keys()
        assert body["error"] == "Too Many Requests" and body["code"] == "LOGIN_LOCKED_OUT"
        assert "Try again in about 15 minutes" in body["message"]
        assert 14 * 60 <= body["retry_after"] <= 15 * 60 and body["retry_at"]
        assert "access" not in body


def test_one_client_guessing_many_accounts_is_locked_out_but_only_that_client(client, clerk, limit):
    for n in range(limit):
        admin_login(client, f"nobody{n}", "guess", ip="203.0.113.7")
    assert admin_login(client, "clerk", "clerk-pass-123", ip="203.0.113.7").status_code == 429
    other = Client()
    response = admin_login(other, "clerk", "clerk-pass-123", ip="198.51.100.20")
    assert response.status_code == 302  # the account itself was never guessed at: it is not locked


def test_one_account_guessed_from_many_clients_is_locked_everywhere(client, clerk, limit):
    for n in range(limit):
        admin_login(Client(), "clerk", "guess", ip=f"203.0.113.{n + 1}")
    response = admin_login(client, "clerk", "clerk-pass-123", ip="198.51.100.20")
    assert response.status_code == 429


def test_username_case_does_not_give_a_guesser_more_tries(client, clerk, limit):
    for n in range(limit):
        admin_login(Client(), ["CLERK", "Clerk", "clerk "][n % 3], "guess", ip=f"203.0.113.{n + 1}")
    assert set(AccessAttempt.objects.values_list("username", flat=True)) == {"clerk"}
    assert admin_login(client, "clerk", "clerk-pass-123", ip="198.51.100.20").status_code == 429


def test_behind_the_proxy_each_client_is_counted_by_its_forwarded_address(settings, clerk, limit):
    settings.TRUSTED_PROXIES = ["10.0.0.1"]
    guesser, colleague = Client(), Client()
    for n in range(limit):
        guesser.post(
            ADMIN_LOGIN,
            {"username": f"nobody{n}", "password": "guess"},
            REMOTE_ADDR="10.0.0.1",
            HTTP_X_FORWARDED_FOR="203.0.113.7",
        )
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.7"}
    response = colleague.post(
        ADMIN_LOGIN,
        {"username": "clerk", "password": "clerk-pass-123", "next": "/admin/"},
        REMOTE_ADDR="10.0.0.1",
        HTTP_X_FORWARDED_FOR="198.51.100.20",
    )
    assert response.status_code == 302  # the proxy's own address locked nobody out


def test_deleting_the_attempts_in_the_admin_unlocks(client, clerk, limit, django_user_model):
    for _ in range(limit):
        admin_login(client, "clerk", "wrong")
    assert admin_login(client, "clerk", "clerk-pass-123").status_code == 429

    operator = Client()
    login_with_second_factor(operator, django_user_model.objects.create_superuser("ops", "o@example.org", "x"))
    attempt = AccessAttempt.objects.get(username="clerk")
    assert "clerk" in operator.get("/admin/axes/accessattempt/").content.decode()
    response = operator.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not AccessAttempt.objects.exists()

    assert admin_login(client, "clerk", "clerk-pass-123").status_code == 302


@pytest.mark.parametrize("command", [("axes_reset",), ("axes_reset_username", "clerk")])
def test_the_reset_commands_unlock(client, clerk, limit, command):
    for _ in range(limit):
        admin_login(client, "clerk", "wrong")
    assert admin_login(client, "clerk", "clerk-pass-123").status_code == 429
    call_command(*command, stdout=StringIO())
    assert admin_login(client, "clerk", "clerk-pass-123").status_code == 302


def test_a_lockout_on_an_api_path_is_never_an_html_page():
    request = RequestFactory().post("/api/v1.0/anything/", {"username": "amani"})
    response = lockout_response(request, None, {"username": "amani"})
    assert response.status_code == 429 and response["Content-Type"] == "application/json"
    assert json.loads(response.content)["code"] == "LOGIN_LOCKED_OUT"


# --- a second factor for approvers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: make_approver("checker"),
        lambda: make_approver("checker", via_group=True, permission="approve_refund"),
        lambda: make_approver("checker", permission="approve_refund"),
    ],
    ids=["approve_payout", "approve_refund via a group", "approve_refund"],
)
def test_an_approver_without_a_device_is_refused_and_told_to_enrol(client, make):
    make()
    response = admin_login(client, "checker", "approver-pass-123")
    html = response.content.decode()
    assert response.status_code == 200 and not signed_in(client)
    assert "no authenticator is enrolled" in html and "manage.py otp_enroll checker" in html


def test_a_superuser_needs_the_second_factor_too(client, django_user_model):
    django_user_model.objects.create_superuser("root", "r@example.org", "root-pass-123")
    response = admin_login(client, "root", "root-pass-123")
    assert response.status_code == 200 and not signed_in(client)
    assert "manage.py otp_enroll root" in response.content.decode()


def test_an_approver_with_a_valid_code_gets_in_and_a_wrong_code_does_not(client):
    approver = make_approver("checker")
    device = TOTPDevice.objects.create(user=approver, name="phone", confirmed=True)

    response = admin_login(client, "checker", "approver-pass-123")  # no code
    assert response.status_code == 200 and "enter the code from your authenticator app" in response.content.decode()
    wrong = "000000" if current_code(device) != "000000" else "111111"
    response = admin_login(client, "checker", "approver-pass-123", otp_token=wrong)
    assert response.status_code == 200 and "That authenticator code is not right" in response.content.decode()
    assert not signed_in(client)
    assert AccessAttempt.objects.get(username="checker").failures_since_start == 1  # counted like a bad password

    device.refresh_from_db()
    device.throttle_reset()  # django-otp's own back-off after the wrong code
    response = admin_login(client, "checker", "approver-pass-123", otp_token=current_code(device))
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/payments/payout/").status_code == 200


def test_an_approver_signed_in_with_a_password_elsewhere_is_refused_the_admin(client):
    approver = make_approver("checker")
    TOTPDevice.objects.create(user=approver, name="phone", confirmed=True)
    client.force_login(approver)  # e.g. through the donor login: a password only
    assert client.get("/admin/payments/payout/").status_code == 302
    page = client.get("/admin/login/").content.decode()
    assert "sign in here again with your password and the 6-digit code" in page


def test_a_staff_user_who_approves_nothing_signs_in_with_a_password_only(client, clerk):
    response = admin_login(client, "clerk", "clerk-pass-123")
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/payments/payment/").status_code == 200


# --- otp_enroll --------------------------------------------------------------------------------------------------


def test_otp_enroll_prints_a_uri_and_key_that_let_the_approver_in(client):
    approver = make_approver("checker")
    out = StringIO()
    call_command("otp_enroll", "checker", stdout=out)
    device = TOTPDevice.objects.get(user=approver)
    text = out.getvalue()
    assert device.confirmed and "otpauth://totp/Patient%20donations%3Achecker?" in text
    secret = next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("Secret key"))
    assert f"secret={secret}" in text

    response = admin_login(client, "checker", "approver-pass-123", otp_token=current_code(device))
    assert response.status_code == 302


def test_otp_enroll_refuses_a_second_device_and_resets_or_removes_on_request():
    approver = make_approver("checker")
    call_command("otp_enroll", "checker", stdout=StringIO())
    old_key = TOTPDevice.objects.get(user=approver).key
    with pytest.raises(CommandError, match="--reset"):
        call_command("otp_enroll", "checker", stdout=StringIO())
    call_command("otp_enroll", "checker", "--reset", stdout=StringIO())
    assert TOTPDevice.objects.get(user=approver).key != old_key
    call_command("otp_enroll", "checker", "--remove", stdout=StringIO())
    assert not TOTPDevice.objects.filter(user=approver).exists()
    with pytest.raises(CommandError, match="No user"):
        call_command("otp_enroll", "nobody", stdout=StringIO())


# --- idle staff sessions -----------------------------------------------------------------------------------------


def _last_seen(client: Client, seconds_ago: int) -> None:
    session = client.session
    session[LAST_SEEN_KEY] = int(time.time()) - seconds_ago
    session.save()


def test_an_idle_staff_session_expires(client, clerk, settings):
    client.force_login(clerk)
    assert client.get("/admin/payments/payment/").status_code == 200
    _last_seen(client, settings.STAFF_SESSION_IDLE_SECONDS + 5)
    response = client.get("/admin/payments/payment/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert not signed_in(client)
    notice = f"signed out after {settings.STAFF_SESSION_IDLE_SECONDS // 60} minutes without activity"
    assert notice in client.get(response["Location"]).content.decode()


def test_an_active_staff_session_does_not(client, clerk, settings):
    client.force_login(clerk)
    client.get("/admin/payments/payment/")
    _last_seen(client, settings.STAFF_SESSION_IDLE_SECONDS - 60)
    assert client.get("/admin/payments/payment/").status_code == 200
    assert int(time.time()) - client.session[LAST_SEEN_KEY] < 5  # every request moves the clock on
    assert signed_in(client)


def test_a_donor_session_is_not_shortened(client, donor_user, settings):
    client.force_login(donor_user)
    _last_seen(client, settings.STAFF_SESSION_IDLE_SECONDS * 10)
    assert client.get("/my/donations/").status_code == 200
    assert signed_in(client)


def test_the_deploy_check_warns_when_lockouts_are_off(settings):
    from config.login_security import login_lockouts_deploy_check

    assert login_lockouts_deploy_check() == []
    settings.AXES_ENABLED = False
    assert [w.id for w in login_lockouts_deploy_check()] == ["config.W001"]
