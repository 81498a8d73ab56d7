"""Activities that exercise the kit's edge cases (see guest-sdk/js/test/kits.test.mjs)."""

from datetime import timedelta

from wharf_activity import ApplicationError, CancelledError, activity


@activity.defn
def echo_types(*args):
    names = {type(None): "null", bytes: "bytes", str: "string", int: "number",
             float: "number", bool: "boolean", list: "array", dict: "object"}
    return [names.get(type(a), type(a).__name__) for a in args]


@activity.defn
def identity(value):
    return value


@activity.defn
def two(a, b):
    return [a, b]


@activity.defn
def nothing():
    return None


@activity.defn
def boom():
    raise KeyError("missing")


@activity.defn
def cancel():
    raise CancelledError()


@activity.defn
def later():
    activity.complete_async()


@activity.defn(name="app-error")
def app_error():
    raise ApplicationError("custom", {"k": 1}, b"\x01\x02", type="Custom",
                           non_retryable=True, next_retry_delay=timedelta(seconds=1.5))


@activity.defn
def about():
    i = activity.info()
    return {"attempt": i.attempt, "activity_id": i.activity_id, "activity_type": i.activity_type,
            "task_token": i.task_token.decode(), "heartbeat_details": activity.heartbeat_details(),
            "deadline_ms": i.deadline_ms, "workflow_id": i.workflow_id}


@activity.defn
def chatty():
    print("to stdout")
    activity.log.trace("t")
    activity.log.debug("d")
    activity.logger.info("i %d", 1)
    activity.logger.warning("w")
    activity.log.error("e")
    return [activity.heartbeat("a", 1, {"x": 2}), activity.is_cancelled()]
