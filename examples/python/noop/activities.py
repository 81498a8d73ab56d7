"""noop: does nothing and returns binary/null without decoding its arguments
(the cheapest possible attempt, for benchmarks).

count: adds one to a module-level counter and returns the new value. Every
attempt runs in a fresh instance, so it always returns 1. Its optional
argument fail_until_attempt makes attempts before that one fail retryably
(type CountFailed, details [{"count": n}]).

remember(key, value) keeps a JSON value in the process cache and recall(key)
returns it (or None): the one thing that does outlive an attempt, on purpose,
on the process that ran it.
"""

from typing import Any, Optional

from wharf_activity import ApplicationError, activity, binary_null, cache

_NULL = binary_null()

# Lives as long as the instance: one attempt.
_counter = 0


@activity.defn(raw_args=True)
def noop(*args):
    return _NULL


@activity.defn
def count(fail_until_attempt: Optional[int] = None) -> int:
    global _counter
    _counter += 1
    attempt = activity.info().attempt
    if fail_until_attempt is not None and attempt < fail_until_attempt:
        raise ApplicationError(f"attempt {attempt} failed with count {_counter}",
                               {"count": _counter}, type="CountFailed")
    return _counter


@activity.defn
def remember(key: str, value: Any) -> None:
    cache.set_json(key, value)


@activity.defn
def recall(key: str) -> Any:
    return cache.get_json(key)
