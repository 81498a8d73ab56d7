"""The export side: implements the WIT ``activities`` interface over the
registry filled by :func:`wharf_activity.activity.defn`.

How ``run`` ends:

* the function returns -> ``ok(payload)`` (see :mod:`._payload`);
* unknown activity type -> failed, type ``UnknownActivityType``, non-retryable;
* a payload that cannot be decoded, or fewer or more arguments than the
  function takes positionally -> failed, type ``InvalidArgument``,
  non-retryable;
* :class:`ApplicationError` -> failed with its type, details, flags;
* :class:`CancelledError` -> ``cancelled``;
* :class:`CompleteAsyncError` -> ``will-complete-async``;
* any other exception -> failed, retryable, type = the exception's class
  name, message = ``str(exc)``; its traceback goes to the attempt log.
"""

import traceback
from datetime import timedelta
from typing import Any, List, Optional

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import context
from wit_world.imports.types import (
    ActivityError_Cancelled,
    ActivityError_Failed,
    ActivityError_WillCompleteAsync,
    ApplicationError as WitApplicationError,
    Payload,
)

from . import _payload, activity
from ._errors import ApplicationError, CancelledError, CompleteAsyncError


def _failure(message: str, error_type: str, non_retryable: bool,
             details: Optional[List[Payload]] = None,
             next_retry_delay_ms: Optional[int] = None) -> Err:
    return Err(ActivityError_Failed(WitApplicationError(
        message=message,
        error_type=error_type,
        non_retryable=non_retryable,
        details=details or [],
        next_retry_delay_ms=next_retry_delay_ms,
    )))


def _arity_message(activity_type: str, lo: int, hi: Optional[int], got: int) -> str:
    if hi is None:
        expected = f"at least {lo}"
    elif lo == hi:
        expected = str(lo)
    else:
        expected = f"{lo} to {hi}"
    return f"{activity_type}: expected {expected} argument(s), got {got}"


def _delay_ms(delay: Any) -> Optional[int]:
    if delay is None:
        return None
    if isinstance(delay, timedelta):
        ms = delay // timedelta(milliseconds=1)
    else:  # a number of seconds, as time.sleep takes
        ms = int(float(delay) * 1000)
    return max(ms, 0)


class Activities(exports.Activities):
    def activity_types(self) -> List[str]:
        return list(activity._registry)

    def run(self, activity_type: str, args: List[Payload]) -> Payload:
        activity._reset()
        defn = activity._registry.get(activity_type)
        if defn is None:
            known = ", ".join(activity._registry) or "none"
            raise _failure(f"unknown activity type {activity_type!r} (this module has: {known})",
                           "UnknownActivityType", True)
        if defn.raw_args:
            values: List[Any] = list(args)
        else:
            try:
                values = [_payload.decode(p) for p in args]
            except _payload.PayloadDecodeError as e:
                raise _failure(str(e), "InvalidArgument", True) from None
        n = len(values)
        if n < defn.min_args or (defn.max_args is not None and n > defn.max_args):
            raise _failure(_arity_message(activity_type, defn.min_args, defn.max_args, n),
                           "InvalidArgument", True)
        try:
            result = defn.fn(*values)
            return _payload.encode(result)
        except ApplicationError as e:
            try:
                details = _payload.encode_all(e.details)
            except Exception as enc:
                details = []
                activity.log.warn(f"could not encode ApplicationError details: {enc!r}")
            raise _failure(e.message, e.type or "", bool(e.non_retryable), details,
                           _delay_ms(e.next_retry_delay)) from None
        except CancelledError:
            raise Err(ActivityError_Cancelled()) from None
        except CompleteAsyncError:
            raise Err(ActivityError_WillCompleteAsync()) from None
        except Exception as e:
            try:
                context.log(context.Level.ERROR, traceback.format_exc())
            except Exception:
                pass
            raise _failure(str(e), type(e).__name__, False) from None


# Not a string: no activity type can collide with it.
_WARM_UP: Any = object()


def _echo(*args: Any) -> Any:
    return args[0] if args else None


def warm_up(rounds: int = 50) -> None:
    """Runs ``Activities.run`` on a private activity type, raw and with JSON
    arguments, at build time: CPython's specializing interpreter rewrites
    the bytecode it runs, so without this every attempt would start from
    the snapshot's unadapted bytecode, adapt it again and dirty the pages it
    lives on (measured on the noop example: 2-3% of the attempt's time and
    7 of its page faults; more for activities that decode JSON arguments).
    The user's functions are not run."""
    arg = _payload.encode({"warm": [1, "up"]})
    registry = activity._registry
    try:
        run = Activities().run
        for raw in (True, False):
            registry[_WARM_UP] = activity._Definition(_WARM_UP, _echo, raw, 0, None)
            for _ in range(rounds):
                run(_WARM_UP, [])
                run(_WARM_UP, [arg])
    finally:
        registry.pop(_WARM_UP, None)
