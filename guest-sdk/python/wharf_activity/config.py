"""The namespace's configuration variables (secrets among them) granted to
this module, read through the host's ``wharf:activity/config`` interface,
never the environment.

    from wharf_activity import config

    key = config.get("API_KEY")   # the value, or None if the namespace has none

A variable that exists but is not granted to this module raises
:class:`ConfigDenied`, a non-retryable :class:`ApplicationError` of type
``ConfigDenied``.
"""

from typing import List, Optional

from componentize_py_types import Err
from wit_world.imports import config as _host

from ._errors import ApplicationError


class ConfigDenied(ApplicationError):
    """The variable exists but is not granted to this module."""

    def __init__(self, key: str) -> None:
        super().__init__(
            f"configuration variable {key!r} is not granted to this module",
            type="ConfigDenied",
            non_retryable=True,
        )
        self.key = key


def get(key: str) -> Optional[str]:
    """The value of variable ``key``, or None if the namespace has no such variable."""
    try:
        return _host.get(key)
    except Err as e:
        if isinstance(e.value, _host.ConfigError_Denied):
            raise ConfigDenied(key) from None
        raise ApplicationError(f"configuration unavailable: {e.value.value}",
                               type="ConfigUnavailable") from None


def granted_keys() -> List[str]:
    """Names of the variables granted to this module, sorted."""
    return list(_host.granted_keys())
