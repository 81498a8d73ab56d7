"""noop: does nothing and returns binary/null without decoding its arguments
(the cheapest possible attempt, for benchmarks).

count: adds one to a module-level counter and returns the new value. Every
attempt runs in a fresh instance, so it always returns 1. Its optional
argument fail_until_attempt makes attempts before that one fail retryably
(type CountFailed, details [{"count": n}]).
"""

from typing import Optional

from wharf_activity import ApplicationError, activity, binary_null

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
