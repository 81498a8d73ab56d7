"""noop: does nothing and returns binary/null without decoding its arguments
(the cheapest possible attempt, for benchmarks)."""

from wharf_activity import activity, binary_null

_NULL = binary_null()


@activity.defn(raw_args=True)
def noop(*args):
    return _NULL
