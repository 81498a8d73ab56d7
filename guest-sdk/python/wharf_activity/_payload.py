"""Conversion between Python values and Temporal-style payloads.

Encodings follow Temporal's default data converter:

* ``json/plain`` -- UTF-8 JSON; decoded with :func:`json.loads`.
* ``binary/plain`` -- raw bytes; decoded to :class:`bytes`.
* ``binary/null`` -- no value; decoded to ``None``.

Encoding a value: ``bytes``/``bytearray``/``memoryview`` become
``binary/plain``; a :class:`Payload` is passed through unchanged; anything else
(including ``None``, which becomes JSON ``null``) becomes ``json/plain``.
"""

import json
from typing import Any, List

from wit_world.imports.types import Payload

JSON_PLAIN = b"json/plain"
BINARY_PLAIN = b"binary/plain"
BINARY_NULL = b"binary/null"


class PayloadDecodeError(ValueError):
    """A payload could not be decoded (unknown encoding or malformed data)."""


def encoding_of(payload: Payload) -> bytes:
    for key, value in payload.metadata:
        if key == "encoding":
            return bytes(value)
    return b""


def decode(payload: Payload) -> Any:
    """Decodes one payload to a Python value; raises PayloadDecodeError."""
    encoding = encoding_of(payload)
    if encoding == JSON_PLAIN:
        try:
            return json.loads(bytes(payload.data).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise PayloadDecodeError(f"malformed json/plain payload: {e}") from None
    if encoding == BINARY_NULL:
        return None
    if encoding == BINARY_PLAIN:
        return bytes(payload.data)
    name = encoding.decode("utf-8", "replace") or "(none)"
    raise PayloadDecodeError(f"unsupported payload encoding {name}")


def encode(value: Any) -> Payload:
    """Encodes one Python value to a payload (see the module docs)."""
    if isinstance(value, Payload):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return Payload(metadata=[("encoding", BINARY_PLAIN)], data=bytes(value))
    data = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return Payload(metadata=[("encoding", JSON_PLAIN)], data=data.encode("utf-8"))


def encode_all(values) -> List[Payload]:
    return [encode(v) for v in values]


def binary_null() -> Payload:
    """A ``binary/null`` payload: Temporal's encoding of "no value"."""
    return Payload(metadata=[("encoding", BINARY_NULL)], data=b"")
