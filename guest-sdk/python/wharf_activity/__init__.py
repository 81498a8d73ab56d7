"""Wharf activity kit for Python (componentize-py, world ``wharf:activity/activity``).

    from wharf_activity import activity, ApplicationError

    @activity.defn
    def greet(name: str) -> str:
        activity.logger.info("greeting %s", name)
        return f"Hello, {name}!"

Build with ``scripts/build-python DIR -o out.wasm``; the build imports the
activity module (default ``activities``) and exports the WIT ``activities``
interface through :class:`wharf_activity._runtime.Activities`.
"""

from wit_world.imports.types import Payload

from . import activity, cache, config
from ._errors import ApplicationError, CancelledError, CompleteAsyncError
from ._payload import binary_null, decode as decode_payload, encode as encode_payload

__all__ = [
    "activity", "cache", "config", "ApplicationError", "CancelledError", "CompleteAsyncError",
    "Payload", "binary_null", "decode_payload", "encode_payload",
]
