"""The settings of the logins that guard money (django-axes lockouts, TOTP for staff who move money, the staff
idle timeout; docs/security.md), read from the environment like the rest of config/settings.py, which
star-imports them (kept apart so that module stays short)."""

from datetime import timedelta

import environ

env = environ.Env()  # the environment settings.py reads (star-imported with the settings: the same thing)

# django-axes counts failed logins (admin, donor portal, API token) per client IP and, separately, per username:
# either one reaching AXES_FAILURE_LIMIT within the cool-off locks that client or that account out (429).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out login before the password is checked
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]  # each on its own: one IP, many accounts; one account, many IPs
AXES_RESET_ON_SUCCESS = False  # a success must not wipe the IP's count (log into your own account, keep guessing)
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # the lockout ends when the page says, hammering or not
AXES_CLIENT_IP_CALLABLE = "config.net.client_ip"  # the same client IP as rate limits: behind TRUSTED_PROXIES
AXES_USERNAME_CALLABLE = "config.login_security.lockout_username"  # case-folded: one counter per account
AXES_LOCKOUT_CALLABLE = "config.login_security.lockout_response"  # HTML page, or JSON on API paths
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False  # no banner on every manage.py run; lockouts are still logged (docs/security.md)
# TOTP (django-otp) for staff who can approve payouts or refunds; `manage.py otp_enroll <username>` enrols.
OTP_TOTP_ISSUER = env("OTP_TOTP_ISSUER", default="Patient donations")
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # the device admin never shows a secret key again once created
# Staff are signed out after this many seconds without a request; donors' sessions keep Django's default.
STAFF_SESSION_IDLE_SECONDS = env.int("STAFF_SESSION_IDLE_SECONDS", default=30 * 60)
