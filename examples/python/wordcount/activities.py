"""wordcount: counts words item by item, heartbeating progress so that a
retried attempt resumes where the last one stopped.

Argument: {"items": [str, ...], "step_ms": int = 0, "fail_at": int | null}.
"""

import re
import time

from wharf_activity import ApplicationError, CancelledError, activity

# Unicode White_Space, as Rust's str::split_whitespace uses: Python's
# str.split() also splits on U+001C..U+001F, JavaScript's \s also on U+FEFF
# and not on U+0085, and every language's wordcount must agree.
_WHITESPACE = re.compile("[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type="InvalidArgument", non_retryable=True)


def _int(value, what: str, default=None):
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f"{what} must be an integer")
    return value


@activity.defn
def wordcount(arg: dict) -> dict:
    if not isinstance(arg, dict):
        raise _invalid('wordcount takes {"items": [string], "step_ms": int, "fail_at": int|null}')
    items = arg.get("items")
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise _invalid("items must be a list of strings")
    step_ms = _int(arg.get("step_ms"), "step_ms", 0)
    fail_at = _int(arg.get("fail_at"), "fail_at")

    start, total = 0, 0
    details = activity.heartbeat_details()
    if details and isinstance(details[0], dict):
        start = int(details[0].get("next", 0))
        total = int(details[0].get("words", 0))
    attempt = activity.info().attempt

    processed = 0
    for i in range(start, len(items)):
        if fail_at == i and attempt == 1:
            raise ApplicationError(f"simulated crash before item {i}", type="SimulatedCrash")
        total += sum(1 for w in _WHITESPACE.split(items[i]) if w)
        processed += 1
        if activity.heartbeat({"next": i + 1, "words": total}):
            raise CancelledError()
        if step_ms > 0:
            time.sleep(step_ms / 1000)

    return {"words": total, "items": len(items), "resumed_from": start, "processed": processed}
