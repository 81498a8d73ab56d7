"""greet: the smallest useful activity, plus `probe`, which checks that the
host grants nothing (no files, no environment, no network)."""

import os

from wharf_activity import ApplicationError, activity, config


@activity.defn
def greet(name: str) -> str:
    if not isinstance(name, str):
        raise ApplicationError("greet takes a string", type="InvalidArgument", non_retryable=True)
    activity.logger.info("greeting %s (attempt %d)", name, activity.info().attempt)
    return f"Hello, {name}!"


def _probe_file() -> dict:
    try:
        with open("/etc/passwd", "rb") as f:
            data = f.read()
        return {"denied": False, "error": None, "bytes": len(data)}
    except OSError as e:
        return {"denied": True, "error": f"{type(e).__name__}: {e}"}


def _probe_env() -> dict:
    names = sorted(os.environ)
    return {"denied": not names, "error": None, "count": len(names), "names": names}


def _probe_net(addr: str) -> dict:
    host, _, port = addr.rpartition(":")
    try:
        import socket
    except ImportError as e:
        return {"denied": True, "error": f"no API: {e}"}
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return {"denied": False, "error": None, "addr": addr}
    except Exception as e:  # OSError, or whatever the WASI socket layer raises
        return {"denied": True, "error": f"{type(e).__name__}: {e}", "addr": addr}


@activity.defn
def probe(arg: dict) -> dict:
    what = arg.get("what") if isinstance(arg, dict) else None
    if what == "file":
        result = _probe_file()
    elif what == "env":
        result = _probe_env()
    elif what == "net":
        result = _probe_net(str(arg.get("addr") or "1.1.1.1:80"))
    elif what == "config":
        result = {"denied": False, "error": None, "value": config.get(str(arg.get("key")))}
    else:
        raise ApplicationError('probe takes {"what": "file" | "env" | "net" | "config"}',
                               type="InvalidArgument", non_retryable=True)
    return {"what": what, **result}
