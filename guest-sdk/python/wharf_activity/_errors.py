"""Exceptions that activity code raises to end an attempt in a specific way."""

from datetime import timedelta
from typing import Any, Optional, Sequence


class ApplicationError(Exception):
    """A failure with a type, details and retry hints (Temporal's ApplicationError).

    ``ApplicationError("card declined", {"card": "x"}, type="CardDeclined",
    non_retryable=True)``. Details are encoded like results (json/plain, or
    binary/plain for bytes). ``next_retry_delay`` overrides the retry policy's
    backoff before the next attempt only.
    """

    def __init__(
        self,
        message: str,
        *details: Any,
        type: Optional[str] = None,
        non_retryable: bool = False,
        next_retry_delay: Optional[timedelta] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details: Sequence[Any] = details
        self.type = type
        self.non_retryable = non_retryable
        self.next_retry_delay = next_retry_delay

    def __str__(self) -> str:
        return self.message


class CancelledError(Exception):
    """Raise to report that the attempt stopped because cancellation was requested."""


class CompleteAsyncError(Exception):
    """Raised by :func:`wharf_activity.activity.complete_async`: the result
    will be reported later by task token or activity id."""
