"""The export side: implements the WIT ``activities`` interface over the
registry filled by :func:`wharf_activity.activity.defn`.

How ``run`` ends:

* the function returns -> ``ok(payload)`` (see :mod:`._payload`);
* unknown activity type -> failed, type ``UnknownActivityType``, non-retryable;
* a payload that cannot be decoded, or arguments that do not fit the
  function's signature -> failed, type ``InvalidArgument``, non-retryable;
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
        if defn.signature is not None:
            try:
                defn.signature.bind(*values)
            except TypeError as e:
                raise _failure(f"{activity_type}: {e}", "InvalidArgument", True) from None
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
