"""Functions for activity code, named after ``temporalio.activity``.

``defn`` registers a function as an activity type; the other functions are
only meaningful while an attempt runs (inside ``run``), where they call the
host's ``wharf:activity/context`` interface.
"""

import inspect
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, List, NoReturn, Optional

from wit_world.imports import context

from . import _payload
from ._errors import CancelledError, CompleteAsyncError

__all__ = [
    "defn", "Info", "info", "heartbeat", "heartbeat_details", "is_cancelled",
    "logger", "log", "CancelledError", "CompleteAsyncError", "complete_async",
    "raise_complete_async",
]


@dataclass
class _Definition:
    name: str
    fn: Callable[..., Any]
    raw_args: bool
    # How many positional arguments the function takes: at least min_args,
    # at most max_args (None: any number). Worked out once, at registration:
    # binding an inspect.Signature on every attempt cost the noop example
    # 12% of its attempt time and 44 of its 127 page faults.
    min_args: int = 0
    max_args: Optional[int] = None


def _arity(type_name: str, f: Callable[..., Any]) -> "tuple[int, Optional[int]]":
    """(min, max) positional arguments of ``f``, max None if unbounded."""
    try:
        params = list(inspect.signature(f).parameters.values())
    except (TypeError, ValueError):  # some callables have no signature
        return 0, None
    P = inspect.Parameter
    for p in params:
        if p.kind is P.KEYWORD_ONLY and p.default is P.empty:
            raise TypeError(f"activity {type_name!r}: keyword-only parameter {p.name!r} needs a "
                            "default (activities get positional arguments only)")
    positional = [p for p in params if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)]
    lo = sum(1 for p in positional if p.default is P.empty)
    hi = None if any(p.kind is P.VAR_POSITIONAL for p in params) else len(positional)
    return lo, hi


# Activity type name -> definition, in registration order. Filled when the
# activity module is imported, which componentize-py does at build time, so
# the registry is part of the component's initial snapshot.
_registry: Dict[str, _Definition] = {}


def defn(fn: Optional[Callable[..., Any]] = None, *, name: Optional[str] = None,
         raw_args: bool = False):
    """Registers a function as an activity type (its ``__name__``, or ``name``).

    Usable bare (``@activity.defn``) or with options
    (``@activity.defn(name="fail-typed")``). Positional arguments are decoded
    from the attempt's payloads. With ``raw_args=True`` the function receives
    the undecoded :class:`wharf_activity.Payload` objects instead.
    """

    def register(f: Callable[..., Any]) -> Callable[..., Any]:
        type_name = name or f.__name__
        if inspect.iscoroutinefunction(f):
            raise TypeError(f"activity {type_name!r}: async def is not supported; use a plain function")
        if type_name in _registry:
            raise ValueError(f"activity type {type_name!r} is defined twice")
        lo, hi = _arity(type_name, f)
        _registry[type_name] = _Definition(type_name, f, raw_args, lo, hi)
        return f

    return register(fn) if fn is not None else register


def _ms_to_datetime(ms: Optional[int]) -> Optional[datetime]:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


@dataclass
class Info:
    """What the current attempt knows about itself (``wharf:activity`` activity-info).

    ``heartbeat_details`` are decoded like arguments; a detail with an
    encoding the kit does not know is left as a raw ``Payload``.
    """

    namespace: str
    task_queue: str
    activity_id: str
    activity_type: str
    attempt: int
    task_token: bytes
    scheduled_ms: int
    started_ms: int
    deadline_ms: Optional[int]
    heartbeat_timeout_ms: Optional[int]
    heartbeat_details: List[Any] = field(default_factory=list)
    workflow_id: Optional[str] = None
    workflow_type: Optional[str] = None
    worker_task_queue: str = ""

    @property
    def scheduled_time(self) -> datetime:
        return _ms_to_datetime(self.scheduled_ms)  # type: ignore[return-value]

    @property
    def started_time(self) -> datetime:
        return _ms_to_datetime(self.started_ms)  # type: ignore[return-value]

    @property
    def deadline(self) -> Optional[datetime]:
        return _ms_to_datetime(self.deadline_ms)

    @property
    def heartbeat_timeout(self) -> Optional[timedelta]:
        ms = self.heartbeat_timeout_ms
        return None if ms is None else timedelta(milliseconds=ms)


_info_cache: Optional[Info] = None


def _reset() -> None:
    """Forgets per-attempt state; called at the start of every ``run``."""
    global _info_cache
    _info_cache = None


def _decode_detail(p: Any) -> Any:
    try:
        return _payload.decode(p)
    except _payload.PayloadDecodeError:
        return p


def info() -> Info:
    """Describes the current attempt (cached for the attempt)."""
    global _info_cache
    if _info_cache is None:
        i = context.info()
        _info_cache = Info(
            namespace=i.namespace,
            task_queue=i.task_queue,
            activity_id=i.activity_id,
            activity_type=i.activity_type,
            attempt=i.attempt,
            task_token=bytes(i.task_token),
            scheduled_ms=i.scheduled_ms,
            started_ms=i.started_ms,
            deadline_ms=i.deadline_ms,
            heartbeat_timeout_ms=i.heartbeat_timeout_ms,
            heartbeat_details=[_decode_detail(p) for p in i.heartbeat_details],
            workflow_id=i.workflow_id,
            workflow_type=i.workflow_type,
            worker_task_queue=i.worker_task_queue,
        )
    return _info_cache


def heartbeat_details() -> List[Any]:
    """The decoded details of the last heartbeat of an earlier attempt ([] if none)."""
    return list(info().heartbeat_details)


def heartbeat(*details: Any) -> bool:
    """Records progress; each detail is encoded as its own payload.

    Returns True once cancellation was requested: stop and raise
    :class:`CancelledError`.
    """
    return context.heartbeat(_payload.encode_all(details))


def is_cancelled() -> bool:
    """True once cancellation of the activity was requested."""
    return context.is_cancelled()


def complete_async() -> NoReturn:
    """Ends ``run`` reporting that the result will be delivered later by task
    token or activity id (Temporal's ``raise_complete_async``)."""
    raise CompleteAsyncError()


raise_complete_async = complete_async


class _Log:
    """Direct, unformatted access to the attempt log: ``activity.log.info("...")``."""

    @staticmethod
    def trace(message: str) -> None:
        context.log(context.Level.TRACE, str(message))

    @staticmethod
    def debug(message: str) -> None:
        context.log(context.Level.DEBUG, str(message))

    @staticmethod
    def info(message: str) -> None:
        context.log(context.Level.INFO, str(message))

    @staticmethod
    def warn(message: str) -> None:
        context.log(context.Level.WARN, str(message))

    warning = warn

    @staticmethod
    def error(message: str) -> None:
        context.log(context.Level.ERROR, str(message))


log = _Log()


class _ContextHandler(logging.Handler):
    """Sends ``logging`` records to the attempt log."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            if record.levelno >= logging.ERROR:
                level = context.Level.ERROR
            elif record.levelno >= logging.WARNING:
                level = context.Level.WARN
            elif record.levelno >= logging.INFO:
                level = context.Level.INFO
            elif record.levelno >= logging.DEBUG:
                level = context.Level.DEBUG
            else:
                level = context.Level.TRACE
            context.log(level, message)
        except Exception:  # never let logging fail the attempt
            self.handleError(record)


logger = logging.getLogger("wharf_activity")
"""A standard ``logging.Logger`` whose records go to the attempt log."""
logger.addHandler(_ContextHandler())
logger.setLevel(logging.DEBUG)
logger.propagate = False
