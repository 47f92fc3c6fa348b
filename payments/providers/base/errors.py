"""The exceptions a provider adapter raises, with what each promises its caller.

`ProviderError` is the only failure a service expects from a request; `CallbackMalformed` from a parser;
`ProviderSettingsInvalid` from a constructor. Nothing else should escape an adapter.
"""

from payments.providers.base.types import SettingProblem


class ProviderError(Exception):
    """The provider was unreachable or refused the request. `message` is safe to show a donor.

    `ambiguous` means a request that moves money may have reached the provider and been acted on (it timed
    out, or the connection dropped after it was sent): the outcome is unknown, not failed, and only the
    provider's status query (or its callback) can settle it. Such a request is never sent again.
    """

    def __init__(
        self, message: str, *, retryable: bool = False, status_code: int | None = None, ambiguous: bool = False
    ):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status_code = status_code
        self.ambiguous = ambiguous


class ProviderSettingsInvalid(ValueError):
    """A provider was built with settings it cannot work with (`SettingProblem`s). A ValueError, as before."""

    def __init__(self, code: str, problems: list[SettingProblem]):
        super().__init__("; ".join(problem.message for problem in problems))
        self.code = code
        self.problems = problems


class CallbackMalformed(ValueError):
    """The body is not a callback we can read."""
