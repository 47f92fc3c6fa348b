"""One env-driven settings module. Every variable is documented in .env.production.example."""

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from config.logging import logging_config
from payments.providers.airtel.config import CONFIG as AIRTEL_CONFIG
from payments.providers.azampay.config import CONFIG as AZAMPAY_CONFIG
from payments.providers.config import provider_settings
from payments.providers.mpesa.config import CONFIG as MPESA_CONFIG
from payments.providers.mtn.config import CONFIG as MTN_CONFIG

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
# A development key only works while DEBUG is on; `check --deploy` refuses it in production.
SECRET_KEY = env("SECRET_KEY", default="django-insecure-dev-only-key-change-me" if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (see .env.production.example).")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "config.apps.AdminConfig",  # django.contrib.admin with our site (dashboard first)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",  # refresh tokens used once, revoked on logout (donor/tokens.py)
    "drf_spectacular",
    "django_tasks_db",
    "axes",  # failed-login lockouts (docs/security.md)
    "django_otp",  # a second factor for payout and refund approvers
    "django_otp.plugins.otp_totp",
    "patients",
    "donor",
    "payments",
    "pledges",  # monthly pledges, above donor and payments
    "receipts",  # numbered PDF receipts and yearly statements: above donor, below payments (receipts/models.py)
    "finance",  # the month close: statements against the ledger (imports payments; nothing imports it)
    "portal",  # the HTML site above the domain apps (portal/apps.py)
]

MIDDLEWARE = [
    "config.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves /static/ itself (hashed, compressed files, cached for a year): the admin has its CSS under gunicorn
    # with no proxy rule. It answers only GET/HEAD of collected files, so provider callbacks pass it untouched.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",  # SECURE_CSP on every answer
    "config.middleware.ProviderCallbackMiddleware",  # provider callbacks skip the browser middleware below
    "config.middleware.BodySizeLimitMiddleware",  # a body over DATA_UPLOAD_MAX_MEMORY_SIZE: 413, before it is read
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",  # the language: the switch's cookie, else Accept-Language
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",  # request.user.is_verified(): signed in with a second factor
    "django.contrib.messages.middleware.MessageMiddleware",
    "config.throttles.RateLimitMiddleware",  # sign-in, registration, donation status: per client (config/throttles.py)
    "config.staff_sessions.StaffIdleTimeoutMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.middleware.JsonErrorMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out login into the 429 page (axes' docs)
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",  # {{ csp_nonce }}, should an inline script ever be needed
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Off on purpose: a failure while processing a callback must never roll back the stored raw callback.
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "charset": "utf8mb4",
            # Strict mode turns silent truncation of money or references into an error.
            "init_command": "SET sql_mode='STRICT_TRANS_TABLES'",
            "isolation_level": "read committed",
        }
    )
    DATABASES["default"]["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the sandbox's callbacks and the site write to the demo DB together.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE"}
    )

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

_VALIDATORS = ("UserAttributeSimilarity", "MinimumLength", "CommonPassword", "NumericPassword")
AUTH_PASSWORD_VALIDATORS = [{"NAME": f"django.contrib.auth.password_validation.{v}Validator"} for v in _VALIDATORS]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("sw", "Kiswahili")]
LOCALE_PATHS = [BASE_DIR / "locale"]  # one catalogue for donor-facing text: locale/sw/ (docs/glossary.md)
TIME_ZONE = env("TIME_ZONE", default="Africa/Dar_es_Salaam")  # USE_TZ and USE_I18N: on (the defaults)

STATIC_URL = "static/"
# `manage.py collectstatic` writes here; WhiteNoise serves it (README "Production").
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
# Hashed names (base.<hash>.css) with gzip copies, so a file can be cached for a year and a new release
# still reaches every browser. The manifest exists only after collectstatic: with DEBUG off a page naming a
# static file fails until it has run (with DEBUG on, templates use the plain names).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
MEDIA_URL = "media/"
MEDIA_ROOT = BASE_DIR / "media"
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/my/donations/"
LOGOUT_REDIRECT_URL = "/"

# --- Security (all from env so `check --deploy --fail-level WARNING` is clean in production) ----------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy on every page (docs/security.md): scripts only from this site (the portal's are files in
# portal/static/, the admin's are Django's) or with the request's nonce; no inline script, event handler or
# javascript: URL runs. Inline styles are allowed (style attributes cannot carry a nonce; CSS cannot run code).
# No form-action: the donate form's answer may redirect to a provider's card checkout page. /api/docs/ adds the
# Swagger UI's CDN (config/urls.py).
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
if env.bool("USE_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Client IP addresses of reverse proxies whose X-Forwarded-For we believe (comma separated).
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])

# --- Logins that guard money: config/settings_logins.py ---------------------------------------------
from config.settings_logins import *  # noqa: E402,F403

# --- API ------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # simplejwt's, refusing a token issued before the account's last logout or password change (donor/tokens.py).
    "DEFAULT_AUTHENTICATION_CLASSES": ["donor.tokens.EpochJWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.exception_handler.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's JSON parser lets a RecursionError (absurdly nested JSON) escape as a 500; ours answers 400.
    # JSON only: a form-encoded or multipart body is a 415. An HTML form on another site can post forms (and
    # text/plain) across origins without a preflight, never application/json: the API cannot be driven by one.
    "DEFAULT_PARSER_CLASSES": ["config.parsers.SafeJSONParser"],
}
# API tokens (docs/security.md "API tokens"): short access tokens, refresh tokens that rotate and are used once,
# every token of an account revoked by its logout or a password change (donor/tokens.py).
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_TOKEN_MINUTES", default=5)),
    "REFRESH_TOKEN_LIFETIME": timedelta(hours=env.int("JWT_REFRESH_TOKEN_HOURS", default=24)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "TOKEN_OBTAIN_SERIALIZER": "donor.tokens.TokenObtainPairSerializer",
    "TOKEN_REFRESH_SERIALIZER": "donor.tokens.TokenRefreshSerializer",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Patient donations API",
    "DESCRIPTION": "Fund a patient's treatment with mobile money. Every error answers the `Error` shape "
    "(`{error, message, code, …}`, docs/api.md); each operation lists the errors it can answer.",
    "VERSION": "1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The patient list and the patient detail share Patient.Status: one name for it.
    "ENUM_NAME_OVERRIDES": {"PatientStatusEnum": "patients.models.Patient.Status"},
    # config/schema.py: the error responses of every operation, DRF's string rules, the donation variants.
    "DEFAULT_GENERATOR_CLASS": "config.schema.ApiSchemaGenerator",
    "POSTPROCESSING_HOOKS": ["config.schema.enum_components"],
    # Request bodies are documented as JSON (the API also parses form and multipart, where types are lost).
    "PARSER_WHITELIST": ["rest_framework.parsers.JSONParser"],
}

# --- Domain ---------------------------------------------------------------------------------------
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
DONATION_REFERENCE_PREFIX = env("DONATION_REFERENCE_PREFIX", default="RHCI")
# The share card's fonts (portal/share.py): DejaVu has every Latin glyph Swahili needs (Debian's fonts-dejavu-core).
SHARE_CARD_FONT_DIR = env("SHARE_CARD_FONT_DIR", default="/usr/share/fonts/truetype/dejavu")
OVERFUNDING_POLICY = env("OVERFUNDING_POLICY", default="keep")
DONATION_MIN_AMOUNT = Decimal(env("DONATION_MIN_AMOUNT", default="1"))
DONATION_MAX_AMOUNT = Decimal(env("DONATION_MAX_AMOUNT", default="10000000"))
ORGANISATION_NAME = env("ORGANISATION_NAME", default="Patient Donations (demo)")  # on receipts and statements
ORGANISATION_REGISTRATION_NUMBER = env("ORGANISATION_REGISTRATION_NUMBER", default="NGO/00000/DEMO")

# --- Background work (Django's tasks framework) --------------------------------------------------
_TASK_BACKENDS = {
    "immediate": "django.tasks.backends.immediate.ImmediateBackend",
    "database": "django_tasks_db.DatabaseBackend",
    "rq": "django_tasks_rq.RQBackend",
}
TASKS_BACKEND = env("TASKS_BACKEND", default="immediate")
# How long finished task rows are kept (TASKS_BACKEND=database); reconcile_payments --loop prunes older ones daily.
TASK_RESULTS_KEEP_DAYS = env.int("TASK_RESULTS_KEEP_DAYS", default=14)
TASKS = {"default": {"BACKEND": _TASK_BACKENDS.get(TASKS_BACKEND, TASKS_BACKEND)}}
# rq (django-tasks-rq): the queue lives in Redis, workers run `manage.py rqworker --job-class django_tasks_rq.Job
# default`. TASKS_REDIS_URL, else the Redis of CACHE_URL (a deploy check warns when the two share a database:
# the cache's clear() is a FLUSHDB).
_CACHE_REDIS_URL = str(CACHES["default"]["LOCATION"]).split(",")[0] if "Redis" in CACHES["default"]["BACKEND"] else ""
TASKS_REDIS_URL = env("TASKS_REDIS_URL", default=_CACHE_REDIS_URL)
RQ_QUEUES = {"default": {"URL": TASKS_REDIS_URL or "redis://127.0.0.1:6379/0", "DEFAULT_TIMEOUT": 300}}
# JOB_CLASS: what --job-class says, for a worker started without it. WORKER_CLASS: RQ's default Worker forks a
# work horse per job (our tasks are short: the fork and a fresh database connection cost ~50 ms of CPU per job,
# bench/README.md); SimpleWorker runs each job in the worker's process, still killed by its timeout (SIGALRM).
RQ = {"JOB_CLASS": "django_tasks_rq.Job", "WORKER_CLASS": env("RQ_WORKER_CLASS", default="rq.worker.SimpleWorker")}
if TASKS_BACKEND == "rq":
    TASKS["default"]["QUEUES"] = list(RQ_QUEUES)
    INSTALLED_APPS.append("django_rq")  # its rqworker command; RQBackend's check requires it

# --- Month close (finance): config/settings_finance.py ---------------------------------------------
from config.settings_finance import *  # noqa: E402,F403

# --- Email ----------------------------------------------------------------------------------------
# EMAIL_URL names the SMTP server, its login and TLS in one value (django-environ), e.g.
# smtp+tls://user:password@smtp.example.org:587; EMAIL_BACKEND alone still picks a backend (console by default).
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
if env("EMAIL_URL", default=""):
    globals().update({k: v for k, v in env.email_url("EMAIL_URL").items() if v is not None})
EMAIL_BACKEND = env("EMAIL_BACKEND", default=EMAIL_BACKEND)
# Without a timeout a mail server that accepts the connection and then stalls holds the notice relay for ever;
# a timed-out send is retried with backoff like any other failure.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="donations@localhost")

# --- Logging --------------------------------------------------------------------------------------
LOG_DIR = Path(env("LOG_DIR", default=str(BASE_DIR / "logs")))
LOG_DIR.mkdir(parents=True, exist_ok=True)
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOG_CONSOLE = env.bool("LOG_CONSOLE", default=DEBUG)
LOGGING = logging_config(log_dir=LOG_DIR, level=LOG_LEVEL, console=LOG_CONSOLE)

# Per-currency (min, max) for one donation; a currency not listed uses DONATION_MIN_AMOUNT/MAX_AMOUNT.
DONATION_LIMITS = env.json(
    "DONATION_LIMITS",
    default={"TZS": [500, 10_000_000], "KES": [10, 250_000], "UGX": [500, 20_000_000], "EUR": [1, 50_000]},
)
GENERAL_FUND_CURRENCIES = set(env.list("GENERAL_FUND_CURRENCIES", default=["TZS", "KES", "UGX", "EUR"]))
DEFAULT_PHONE_REGION = env("DEFAULT_PHONE_REGION", default="TZ")

# --- Payment providers ---------------------------------------------------------------------------------
# With PAYMENTS_SANDBOX_URL set, every provider not explicitly configured points at `manage.py sandbox`
# with the sandbox's built-in test credentials. Production never sets it.
PAYMENTS_SANDBOX_URL = env("PAYMENTS_SANDBOX_URL", default="").rstrip("/")
# Payment prompts (the API's POST …/donations/ and the portal's donate form alike) per minute: per client IP,
# and per destination phone whoever asks (push-prompt bombing). A retry with the same Idempotency-Key is free.
DONATE_RATE_LIMIT_PER_MINUTE = env.int("DONATE_RATE_LIMIT_PER_MINUTE", default=10)
DONATE_PHONE_RATE_LIMIT_PER_MINUTE = env.int("DONATE_PHONE_RATE_LIMIT_PER_MINUTE", default=3)
# Per client IP per minute, the API and its portal twin sharing one count (config/throttles.py): sign-in attempts
# (API token, portal and admin login; django-axes still locks out failures), registrations, and donation status
# reads (the status page polls about 30 times a minute while a payment is open).
LOGIN_RATE_LIMIT_PER_MINUTE = env.int("LOGIN_RATE_LIMIT_PER_MINUTE", default=10)
REGISTER_RATE_LIMIT_PER_MINUTE = env.int("REGISTER_RATE_LIMIT_PER_MINUTE", default=5)
STATUS_RATE_LIMIT_PER_MINUTE = env.int("STATUS_RATE_LIMIT_PER_MINUTE", default=120)
# --- Telegram (receipts and alerts); the sandbox's Telegram in development ---------------------------
TELEGRAM_BOT_TOKEN = env("TELEGRAM_BOT_TOKEN", default="1:sandbox-bot-token" if PAYMENTS_SANDBOX_URL else "")
TELEGRAM_API_URL = env(
    "TELEGRAM_API_URL",
    default=f"{PAYMENTS_SANDBOX_URL}/telegram" if PAYMENTS_SANDBOX_URL else "https://api.telegram.org",
).rstrip("/")
ADMIN_CHAT_ID = env("ADMIN_CHAT_ID", default="")
# --- SMS (integrations/sms.py): the payer's receipt and pledge messages; the sandbox's gateway in development --
SMS_GATEWAY = env("SMS_GATEWAY", default="africastalking" if PAYMENTS_SANDBOX_URL else "none")
if SMS_GATEWAY not in ("africastalking", "none"):
    raise ImproperlyConfigured(f"SMS_GATEWAY must be africastalking or none, not {SMS_GATEWAY!r}")
AFRICASTALKING_USERNAME = env("AFRICASTALKING_USERNAME", default="sandbox")
AFRICASTALKING_API_KEY = env("AFRICASTALKING_API_KEY", default="sandbox-api-key" if PAYMENTS_SANDBOX_URL else "")
# The `sandbox` username is served by Africa's Talking's sandbox host; every other by the live one.
AFRICASTALKING_API_URL = env(
    "AFRICASTALKING_API_URL",
    default=f"{PAYMENTS_SANDBOX_URL}/africastalking"
    if PAYMENTS_SANDBOX_URL
    else "https://api.sandbox.africastalking.com"
    if AFRICASTALKING_USERNAME == "sandbox"
    else "https://api.africastalking.com",
).rstrip("/")
AFRICASTALKING_SENDER_ID = env("AFRICASTALKING_SENDER_ID", default="")
# The secret path segment of the delivery-report URL (/webhooks/sms/africastalking/<token>/); unset: no reports.
SMS_DELIVERY_REPORT_TOKEN = env("SMS_DELIVERY_REPORT_TOKEN", default="")
# --- Monthly pledges (pledges/): `manage.py pledges_run` prompts only inside these local hours (start, end) --
PLEDGE_PROMPT_HOURS = tuple(env.list("PLEDGE_PROMPT_HOURS", cast=int, default=[8, 20]))
if len(PLEDGE_PROMPT_HOURS) != 2 or not 0 <= PLEDGE_PROMPT_HOURS[0] < PLEDGE_PROMPT_HOURS[1] <= 24:
    raise ImproperlyConfigured("PLEDGE_PROMPT_HOURS must be two hours, start < end, e.g. 8,20")
# The outbox (donor/notifications.py): a receipt or notice that keeps failing is parked `dead` after this many tries
# (retried at 1 min, doubling, at most 6 h apart; the watchdog alerts).
NOTICE_MAX_ATTEMPTS = env.int("NOTICE_MAX_ATTEMPTS", default=8)
# Receipts yield to a callback storm (payments/services/coalesce.py): while more than this many payment callbacks a
# second have been arriving, the relay waits (0: never), unless a notice has been due for NOTICE_YIELD_MAX_SECONDS.
NOTICE_YIELD_RATE = env.int("NOTICE_YIELD_RATE", default=20)
NOTICE_YIELD_MAX_SECONDS = env.int("NOTICE_YIELD_MAX_SECONDS", default=300)
# `manage.py sandbox` only: 0.1 makes every scripted delay (1 s callback, 30 s timeout) ten times shorter.
SANDBOX_TIME_SCALE = env.float("SANDBOX_TIME_SCALE", default=1.0)
# One block of constructor arguments per provider, from the variables each provider declares in
# payments/providers/<code>/config.py (every one is listed in .env.production.example). A provider whose
# main credential is unset points at the sandbox when PAYMENTS_SANDBOX_URL is set.
ALL_PROVIDER_CONFIGS = (AZAMPAY_CONFIG, MPESA_CONFIG, MTN_CONFIG, AIRTEL_CONFIG)
# The rails this site offers. One left out is not offered to donors (400 naming the choices), its callback URLs
# answer 404, its variables are not read and its deploy checks are silent.
PAYMENT_RAILS = env.list("PAYMENT_RAILS", default=[config.code for config in ALL_PROVIDER_CONFIGS])
_unknown_rails = set(PAYMENT_RAILS) - {config.code for config in ALL_PROVIDER_CONFIGS}
if _unknown_rails or not PAYMENT_RAILS:
    raise ImproperlyConfigured(
        f"PAYMENT_RAILS={','.join(PAYMENT_RAILS)!r}: name one or more of "
        f"{', '.join(config.code for config in ALL_PROVIDER_CONFIGS)}."
    )
PROVIDER_CONFIGS = tuple(config for config in ALL_PROVIDER_CONFIGS if config.code in PAYMENT_RAILS)
PAYMENT_PROVIDERS: dict[str, dict] = provider_settings(
    env,
    sandbox_url=PAYMENTS_SANDBOX_URL,
    configs=PROVIDER_CONFIGS,
    shared={
        "connect_timeout": env.float("PROVIDER_CONNECT_TIMEOUT", default=5.0),
        "read_timeout": env.float("PROVIDER_READ_TIMEOUT", default=30.0),
    },
)
# What Daraja does with a paybill payment when our validation URL does not answer (mpesa_register_c2b).
MPESA_C2B_RESPONSE_TYPE = env("MPESA_C2B_RESPONSE_TYPE", default="Completed")
# Which callbacks may be applied without asking the provider: "trusted" (authenticated ones) or "never".
PAYMENTS_APPLY_TRUSTED_CALLBACKS = env.bool("PAYMENTS_APPLY_TRUSTED_CALLBACKS", default=True)
# When a provider's callback is answered: "handled" — after it was applied, so the answer reflects the outcome
# (404 for an unknown reference); or "stored" — as soon as it is durably in the inbox, a task worker applies it
# (process_callback) and the sweeper runs any whose task was lost. "stored" keeps the request short under load;
# it needs a task backend with running workers (TASKS_BACKEND=database or rq). Forged callbacks get 401 either way.
CALLBACK_ACK = env("CALLBACK_ACK", default="handled")
CALLBACK_MAX_BODY_BYTES = env.int("CALLBACK_MAX_BODY_BYTES", default=64 * 1024)
WEBHOOK_RATE_LIMIT_PER_MINUTE = env.int("WEBHOOK_RATE_LIMIT_PER_MINUTE", default=1000)
# Refused callbacks (forged on their bytes, or over the rate limit) keep a fixed-size record each, up to this
# many per client, provider and day; past it only the client's count of the day grows (payments.CallbackRefusal).
CALLBACK_REFUSED_RECORDS_PER_CLIENT = env.int("CALLBACK_REFUSED_RECORDS_PER_CLIENT", default=100)
HEALTH_RATE_LIMIT_PER_MINUTE = env.int("HEALTH_RATE_LIMIT_PER_MINUTE", default=100)
# The inbox sweeper (part of reconcile_payments): a `received` event untouched this long is taken as abandoned
# (its worker died); a `failed` one is retried after 30 s, 1 min, 2 min, … (CALLBACK_RETRY_BASE_SECONDS doubling,
# at most 6 h) and parked as `dead` after CALLBACK_MAX_ATTEMPTS attempts (the watchdog alerts).
CALLBACK_RETRY_GRACE_SECONDS = env.int("CALLBACK_RETRY_GRACE_SECONDS", default=60)
CALLBACK_RETRY_BASE_SECONDS = env.int("CALLBACK_RETRY_BASE_SECONDS", default=30)
CALLBACK_MAX_ATTEMPTS = env.int("CALLBACK_MAX_ATTEMPTS", default=8)
# The worker applies up to this many stored payment callbacks in one transaction (payments/services/
# callback_batch.py); 1 applies each on its own, as before. Those that need the provider's status query are asked
# CALLBACK_VERIFY_CONCURRENCY at a time.
CALLBACK_BATCH_SIZE = env.int("CALLBACK_BATCH_SIZE", default=50)
CALLBACK_VERIFY_CONCURRENCY = env.int("CALLBACK_VERIFY_CONCURRENCY", default=8)
# The donor's "ask the provider now": per client per minute, and at most once per donation in this interval.
REFRESH_RATE_LIMIT_PER_MINUTE = env.int("REFRESH_RATE_LIMIT_PER_MINUTE", default=30)
REFRESH_MIN_INTERVAL_SECONDS = env.int("REFRESH_MIN_INTERVAL_SECONDS", default=5)
# How long the first request with an Idempotency-Key holds it; a retry after that takes over (it crashed).
IDEMPOTENCY_LEASE_SECONDS = env.int("IDEMPOTENCY_LEASE_SECONDS", default=90)
# Seconds after which a pending payment nobody confirms is expired by reconciliation.
PAYMENT_EXPIRY_SECONDS = env.int("PAYMENT_EXPIRY_SECONDS", default=24 * 3600)
RECONCILE_LADDER_SECONDS = [30, 120, 600, 3600, 6 * 3600, 24 * 3600]
