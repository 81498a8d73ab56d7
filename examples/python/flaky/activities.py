"""flaky: activities that fail on purpose, to exercise retry policies.

* flaky {"succeed_on_attempt": int, "retry_delay_ms": int | null}
* reject {"reason": str}          -> non-retryable InvalidOrder
* fail-typed {"error_type": str}  -> retryable failure of that type
"""

from datetime import timedelta

from wharf_activity import ApplicationError, activity


def _field(arg, key: str, kind, optional: bool = False):
    value = arg.get(key) if isinstance(arg, dict) else None
    if value is None and optional:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ApplicationError(f"argument field {key!r} must be a {kind.__name__}",
                               type="InvalidArgument", non_retryable=True)
    return value


@activity.defn
def flaky(arg: dict) -> dict:
    succeed_on = _field(arg, "succeed_on_attempt", int)
    delay_ms = _field(arg, "retry_delay_ms", int, optional=True)
    attempt = activity.info().attempt
    if attempt < succeed_on:
        raise ApplicationError(
            f"attempt {attempt} failed",
            {"attempt": attempt},
            type="FlakyError",
            next_retry_delay=None if delay_ms is None else timedelta(milliseconds=delay_ms),
        )
    return {"attempt": attempt}


@activity.defn
def reject(arg: dict) -> None:
    reason = _field(arg, "reason", str)
    raise ApplicationError(f"order rejected: {reason}", {"reason": reason},
                           type="InvalidOrder", non_retryable=True)


@activity.defn(name="fail-typed")
def fail_typed(arg: dict) -> None:
    error_type = _field(arg, "error_type", str)
    raise ApplicationError(f"failed with {error_type}", type=error_type)
