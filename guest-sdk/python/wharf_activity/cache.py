"""The process cache, read and written through the host's
``wharf:activity/cache`` interface: bytes kept for later attempts of this
module on the same process, until evicted (least recently used first) or the
process stops.

    from wharf_activity import cache

    index = cache.get_json("index")
    if index is None:               # a miss must always work
        index = build_index()
        cache.set_json("index", index)

Module globals never survive an attempt; this is the one deliberate
exception. Route follow-up activities to ``activity.info().worker_task_queue``
to find a warm cache. A value larger than the budget raises a non-retryable
:class:`ApplicationError` of type ``CacheError``.
"""

import json
from typing import Any, Optional

from componentize_py_types import Err
from wit_world.imports import cache as _host

from ._errors import ApplicationError


def get(key: str) -> Optional[bytes]:
    """The bytes under ``key``, or None."""
    return _host.get(key)


def set(key: str, value: bytes) -> None:  # noqa: A001 - the WIT name
    """Stores ``value`` (bytes or str) under ``key``."""
    if isinstance(value, str):
        value = value.encode()
    try:
        _host.set(key, bytes(value))
    except Err as e:
        budget = getattr(e.value, "value", "?")
        raise ApplicationError(f"value too large for the cache (budget {budget} bytes)",
                               type="CacheError", non_retryable=True) from None


def delete(key: str) -> None:
    """Removes ``key``."""
    _host.delete(key)


def get_json(key: str) -> Any:
    """The JSON value under ``key``, or None when absent or not JSON."""
    data = get(key)
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def set_json(key: str, value: Any) -> None:
    """Stores ``value`` as JSON under ``key``."""
    set(key, json.dumps(value))
