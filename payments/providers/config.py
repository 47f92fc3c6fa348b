"""Provider settings, declared by each provider and read from the environment by config/settings.py.

Pure Python (no Django): the settings module imports it while Django is still starting. Each provider
package has a `config.py` with one `ProviderConfig`: which environment variables feed which constructor
argument, their defaults, and the sandbox's built-in test values. With PAYMENTS_SANDBOX_URL set, a provider
whose `real_when` variable is unset points at `manage.py sandbox` with those test values; production never
sets PAYMENTS_SANDBOX_URL.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Setting:
    key: str  # the provider's constructor argument
    var: str  # the environment variable
    default: Any = ""
    cast: type = str  # str, bool, int, float or list
    sandbox: Any = None  # the sandbox's test value, used when the variable is unset in sandbox mode


@dataclass(frozen=True)
class ProviderConfig:
    code: str
    real_when: str  # this variable set = the real provider, even when the sandbox is configured
    settings: tuple[Setting, ...]
    sandbox_urls: Mapping[str, str]  # constructor argument → path under PAYMENTS_SANDBOX_URL

    def sandbox_credentials(self) -> dict[str, Any]:
        """The test values the simulator accepts (it reads the same declaration)."""
        return {s.key: s.sandbox for s in self.settings if s.sandbox is not None}


Reader = Callable[..., Any]


def provider_settings(
    env: Any, *, sandbox_url: str, configs: tuple[ProviderConfig, ...], shared: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """`settings.PAYMENT_PROVIDERS`: one block of constructor arguments per provider.

    `env` is django-environ's Env; `shared` holds the arguments every provider takes (timeouts).
    """
    blocks: dict[str, dict[str, Any]] = {}
    for config in configs:
        sandboxed = bool(sandbox_url) and not env(config.real_when, default="")
        block: dict[str, Any] = {}
        for setting in config.settings:
            read = _reader(env, setting.cast)
            if sandboxed and setting.sandbox is not None:
                block[setting.key] = read(setting.var, default=setting.sandbox)
            else:
                block[setting.key] = read(setting.var, default=setting.default)
        if sandboxed:
            block.update({key: f"{sandbox_url}{path}" for key, path in config.sandbox_urls.items()})
        blocks[config.code] = block | dict(shared)
    return blocks


def _reader(env: Any, cast: type) -> Reader:
    return {bool: env.bool, int: env.int, float: env.float, list: env.list}.get(cast, env.str)
