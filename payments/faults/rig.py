"""A whole fault rig: the shared secrets of one run, the production-like environment of gunicorn and of the
operator's commands, and FaultRig, which starts the provider sandbox, the optional faults' servers and gunicorn,
and stops them in reverse whatever happens.

Why the real sandbox and not a fake of our own: the site's token requests and status queries then meet the
same simulators as in development and e2e tests. It never saw the storm's payments being charged (they are seeded
straight into the database), so the rig tells it about them first (POST /_sandbox/learn).
"""

from __future__ import annotations

import os
import secrets as secrets_module
import subprocess
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from payments.faults.processes import HOST, MARIADB_PORT, Gunicorn, RedisServer, Sandbox, TcpProxy, manage
from payments.faults.storm import Delivery, StormDriver
from payments.providers.airtel.config import CONFIG as AIRTEL_CONFIG
from payments.providers.azampay.config import CONFIG as AZAMPAY_CONFIG
from payments.providers.mpesa.config import CONFIG as MPESA_CONFIG
from payments.providers.mtn.config import CONFIG as MTN_CONFIG

AZAMPAY_CALLBACK_PATH = "/api/v1.0/donors/payment/azampay/callback/"
# The sandbox's values the site is given: every credential it declares but this run's callback secrets and URL
# tokens, the C2B shortcode (the storm's paybill confirmations name the STK one) and MTN's currency (UGX here).
NOT_FROM_SANDBOX = frozenset(
    {
        "AZAMPAY_CALLBACK_PASSWORD",
        "MPESA_C2B_SHORTCODE",
        "MPESA_C2B_TOKEN",
        "MPESA_B2C_TOKEN",
        "MTN_CURRENCY",
        "AIRTEL_CALLBACK_SECRET",
    }
)


@dataclass(frozen=True)
class Secrets:
    """The shared secrets of one run: AzamPay's callback password, the C2B/B2C URL tokens, gunicorn's SECRET_KEY
    (it keys the digests of the payments' own callback URL secrets: MTN's) and AIRTEL_CALLBACK_SECRET (the key of
    Airtel's callback `hash`)."""

    azampay_password: str
    c2b_token: str
    b2c_token: str
    secret_key: str
    airtel_callback_secret: str = ""

    @classmethod
    def generate(cls) -> Secrets:
        token = secrets_module.token_urlsafe
        return cls(token(24), token(32), token(32), token(48), token(32))


def sandbox_credentials() -> dict[str, str]:
    """The credentials the sandbox's simulators accept, under the site's environment variable names."""
    configs = (AZAMPAY_CONFIG, MPESA_CONFIG, MTN_CONFIG, AIRTEL_CONFIG)
    return {s.var: str(s.sandbox) for config in configs for s in config.settings if s.sandbox is not None}


def app_env(
    *,
    database_url: str,
    provider_url: str,
    log_dir: Path,
    secrets: Secrets,
    cache_url: str = "",
    sandbox_prefixes: bool = False,
) -> dict[str, str]:
    """The production-like environment of gunicorn and of the operator's manage.py commands.

    Built from scratch (not inherited) so nothing of the caller leaks in: no PAYMENTS_SANDBOX_URL, no test
    settings. Every provider's hosts point at provider_url (with sandbox_prefixes: at the sandbox's /azampay-auth,
    /azampay, /daraja, /mtn and /airtel below it), so reconcile_payments never leaves 127.0.0.1; the credentials
    are the sandbox's, the callback secrets this run's. MTN and Airtel collect UGX in Uganda (MTN's `mtnuganda`
    environment); Airtel's callbacks are authenticated with AIRTEL_CALLBACK_SECRET.
    """

    def url(prefix: str) -> str:
        return provider_url + prefix if sandbox_prefixes else provider_url

    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR") if key in os.environ}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PYTHONUNBUFFERED": "1",
            "DEBUG": "0",
            "SECRET_KEY": secrets.secret_key,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": database_url,
            "CONN_MAX_AGE": "60",
            "TASKS_BACKEND": "immediate",
            "LOG_DIR": str(log_dir),
            "WEBHOOK_RATE_LIMIT_PER_MINUTE": "1000000",
            "HEALTH_RATE_LIMIT_PER_MINUTE": "1000000",
            **{var: value for var, value in sandbox_credentials().items() if var not in NOT_FROM_SANDBOX},
            "AZAMPAY_CALLBACK_PASSWORD": secrets.azampay_password,
            "AZAMPAY_AUTH_URL": url("/azampay-auth"),
            "AZAMPAY_API_URL": url("/azampay"),
            "MPESA_API_URL": url("/daraja"),
            "MPESA_C2B_TOKEN": secrets.c2b_token,
            "MPESA_B2C_TOKEN": secrets.b2c_token,
            "MTN_API_URL": url("/mtn"),
            "MTN_TARGET_ENVIRONMENT": "mtnuganda",
            "MTN_CURRENCY": "UGX",
            "AIRTEL_API_URL": url("/airtel"),
            "AIRTEL_COUNTRY": "UG",
            "AIRTEL_CURRENCY": "UGX",
            "AIRTEL_CALLBACK_SECRET": secrets.airtel_callback_secret,
            "PROVIDER_CONNECT_TIMEOUT": "2",
            "PROVIDER_READ_TIMEOUT": "5",
        }
    )
    if cache_url:
        env["CACHE_URL"] = cache_url
    return env


class FaultRig:
    """The provider sandbox (`manage.py sandbox`), optionally a DB proxy and a private redis-server, and gunicorn,
    started in that order and stopped in reverse, whatever happens in between. `deliveries`: the seeded storm, whose
    payments the sandbox learns so that its status queries answer "paid" about them."""

    def __init__(
        self,
        *,
        database: str,
        workdir: Path,
        secrets: Secrets,
        via_proxy: bool = False,
        with_redis: bool = False,
        workers: int = 3,
        deliveries: Iterable[Delivery] = (),
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.extra_env = dict(extra_env or {})  # e.g. EMAIL_URL at a mail server that is down
        self.deliveries = list(deliveries)  # what the sandbox must answer "paid" about
        self.database = database
        self.workdir = workdir
        self.log_dir = workdir / "logs"
        self.secrets = secrets
        self.via_proxy = via_proxy
        self.with_redis = with_redis
        self.workers = workers
        self.proxy: TcpProxy | None = None
        self.redis: RedisServer | None = None
        self._stack = ExitStack()

    def __enter__(self) -> FaultRig:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.sandbox = Sandbox({}, self.log_dir, callback_url="")
            db_port = MARIADB_PORT
            if self.via_proxy:
                self.proxy = TcpProxy().start()
                self._stack.callback(self.proxy.close)
                db_port = self.proxy.port
            cache_url = ""
            if self.with_redis:
                self.redis = RedisServer(self.workdir).start()
                self._stack.callback(lambda: self.redis and self.redis.stop())
                cache_url = self.redis.url
            self.env = (
                app_env(
                    database_url=f"mysql://root@{HOST}:{db_port}/{self.database}",
                    provider_url=self.sandbox.url,
                    sandbox_prefixes=True,
                    log_dir=self.log_dir,
                    secrets=self.secrets,
                    cache_url=cache_url,
                )
                | self.extra_env
            )
            self.gunicorn = Gunicorn(self.env, self.log_dir, workers=self.workers)
            # The sandbox runs with the site's settings (it reads the same provider declarations), but on the
            # database directly, never through the proxy, and with no cache of the site's.
            self.sandbox.env = {**self.env, "DATABASE_URL": f"mysql://root@{HOST}:{MARIADB_PORT}/{self.database}"}
            self.sandbox.env.pop("CACHE_URL", None)
            self.sandbox.callback_url = self.gunicorn.base_url + AZAMPAY_CALLBACK_PATH
            self._stack.callback(self.sandbox.stop)
            self.sandbox.start()
            self.sandbox.learn([dict(delivery.learn) for delivery in self.deliveries if delivery.learn])
            self._stack.callback(self.gunicorn.stop)
            self.gunicorn.start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def storm(self, deliveries: Iterable[Delivery], **options: Any) -> StormDriver:
        return StormDriver(self.gunicorn.port, deliveries, **options)

    def recover(self) -> list[subprocess.CompletedProcess[str]]:
        """What an operator runs after an incident: reconcile twice."""
        return [manage(self.env, "reconcile_payments", "--older-than", "0s") for _ in range(2)]

    def verify_ledger(self) -> subprocess.CompletedProcess[str]:
        return manage(self.env, "verify_ledger")
