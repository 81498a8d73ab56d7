"""Python workflows that call Wharf's Wasm activities through a real Temporal
server: the workflow side of `host/tests/temporal.rs`.

Usage: workflows.py --address HOST:PORT [--task-queue Q --worker-log FILE] MODE

Modes:
  all        run every scenario at once; print one JSON object name -> outcome
  specs      run the specs of a JSON object name -> spec read from stdin (each
             spec names its task queue, see RunActivity) at once; print one
             JSON object name -> outcome
  outbox     start a 4 s activity, print "started", then wait for the result
             (the server is restarted meanwhile by the test); print it as JSON
  shutdown   start a short and a long activity, print "started", then print
             both outcomes as JSON (the worker is stopped meanwhile)

The workflow returns what the activity returned ({"ok": value}) or a plain
description of the ActivityError ({"error": {...}}), so that the Rust test
asserts on data. The process leaves with os._exit: the SDK sometimes aborts
at interpreter exit after a correct run.
"""

import argparse
import asyncio
import json
import os
import re
import sys
import time
import uuid
from datetime import timedelta

from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    TimeoutError as TemporalTimeoutError,
)
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.workflow import ActivityCancellationType

WORKFLOW_QUEUE = "wharf-tests-workflows"


def describe(err: ActivityError) -> dict:
    """An ActivityError as plain data."""
    cause = err.cause
    d = {
        "class": type(err).__name__,
        "cause": type(cause).__name__ if cause else None,
        "retry_state": err.retry_state.name if err.retry_state else None,
        "message": str(cause) if cause else str(err),
    }
    if isinstance(cause, ApplicationError):
        d.update(
            type=cause.type,
            non_retryable=cause.non_retryable,
            details=list(cause.details),
            message=cause.message,
        )
    elif isinstance(cause, TemporalTimeoutError):
        d["timeout_type"] = cause.type.name if cause.type else None
    elif isinstance(cause, CancelledError):
        d["details"] = list(cause.details)
    return d


@workflow.defn
class RunActivity:
    """Runs one activity as `spec` says; optionally cancels it, or runs a
    second one on the first one's `worker_task_queue`."""

    @workflow.run
    async def run(self, spec: dict) -> dict:
        retry = spec.get("retry", {})
        opts = dict(
            task_queue=spec["task_queue"],
            start_to_close_timeout=timedelta(milliseconds=spec.get("start_to_close_ms", 30000)),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=retry.get("initial_ms", 100)),
                backoff_coefficient=1.0,
                maximum_attempts=retry.get("max_attempts", 0),
            ),
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        if "heartbeat_timeout_ms" in spec:
            opts["heartbeat_timeout"] = timedelta(milliseconds=spec["heartbeat_timeout_ms"])
        if "activity_id" in spec:
            opts["activity_id"] = spec["activity_id"]
        handle = workflow.start_activity(spec["activity"], args=spec.get("args", []), **opts)
        if "cancel_after_ms" in spec:
            await workflow.sleep(timedelta(milliseconds=spec["cancel_after_ms"]))
            handle.cancel()
        try:
            first = await handle
        except ActivityError as e:
            return {"error": describe(e)}
        if spec.get("then_on_worker_queue"):
            opts["task_queue"] = first["worker_task_queue"]
            opts.pop("activity_id", None)
            second = await workflow.execute_activity(spec["activity"], args=spec.get("args", []), **opts)
            return {"ok": first, "then": second}
        return {"ok": first}


async def run_spec(client: Client, spec: dict, timeout: float = 60) -> dict:
    handle = await client.start_workflow(
        RunActivity.run,
        spec,
        id=f"wharf-test-{uuid.uuid4()}",
        task_queue=WORKFLOW_QUEUE,
        execution_timeout=timedelta(seconds=timeout),
    )
    started = time.monotonic()
    result = await handle.result()
    result["workflow_id"] = handle.id
    result["elapsed_s"] = round(time.monotonic() - started, 2)
    return result


async def token_from_log(path: str, activity_id: str, timeout: float = 30) -> bytes:
    """The task token the worker logs for an attempt that will complete
    asynchronously (colour codes, if any, are skipped)."""
    esc = r"(?:\x1b\[[0-9;]*m)*"
    pattern = re.compile(
        rf"activity_id{esc}={esc}{re.escape(activity_id)}\b.*?task_token{esc}={esc}([0-9a-f]+)"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if "will complete asynchronously" in line:
                    m = pattern.search(line)
                    if m:
                        return bytes.fromhex(m.group(1))
        await asyncio.sleep(0.1)
    raise RuntimeError(f"no task token for activity {activity_id} in {path}")


async def async_completion(client: Client, q: str, worker_log: str) -> dict:
    activity_id = f"async-{uuid.uuid4()}"
    spec = {"task_queue": q, "activity": "async-complete", "activity_id": activity_id}
    run = asyncio.create_task(run_spec(client, spec))
    token = await token_from_log(worker_log, activity_id)
    await client.get_async_activity_handle(task_token=token).complete({"completed": "by token"})
    result = await run
    result["token_bytes"] = len(token)
    return result


def scenarios(q: str) -> dict:
    return {
        "greet": {"activity": "greet", "args": ["Ada"]},
        "echo": {
            "activity": "echo",
            "args": [1, 2.5, "two", {"three": [3, None, True]}, None, b"\x00\xffraw"],
        },
        "wordcount": {
            "activity": "wordcount",
            "args": [{"items": ["a b", "c d e", "f", "g h i j"], "fail_at": 2}],
            "heartbeat_timeout_ms": 10000,
        },
        # Core heartbeats at most every 0.8 x the heartbeat timeout and the
        # cancellation comes in a heartbeat's reply: 5 s leaves 1 s of slack
        # for a late heartbeat (2 s left 0.4 s).
        "cancel": {
            "activity": "sleep",
            "args": [{"ms": 30000, "heartbeat_every_ms": 100}],
            "heartbeat_timeout_ms": 5000,
            "cancel_after_ms": 1000,
        },
        "cancel_ignored": {
            "activity": "sleep",
            "args": [{"ms": 30000, "heartbeat_every_ms": 100, "ignore_cancel": True}],
            "heartbeat_timeout_ms": 5000,
            "cancel_after_ms": 1000,
        },
        "timeout": {"activity": "loop", "start_to_close_ms": 2000, "retry": {"max_attempts": 1}},
        "trap": {"activity": "panic", "retry": {"max_attempts": 1}},
        "memory": {"activity": "memory-bomb", "retry": {"max_attempts": 1}},
        "unknown_type": {"activity": "no-such-type", "retry": {"max_attempts": 1}},
        "route": {
            "activity": "info",
            "heartbeat_timeout_ms": 5000,
            "then_on_worker_queue": True,
        },
    }


async def gather_named(jobs: dict) -> dict:
    """Awaits name -> coroutine at once; name -> result, or the exception."""
    results = await asyncio.gather(*jobs.values(), return_exceptions=True)
    return {
        n: (r if not isinstance(r, BaseException) else {"exception": repr(r)})
        for n, r in zip(jobs, results)
    }


async def run_all(client: Client, q: str, worker_log: str) -> dict:
    jobs = {n: run_spec(client, dict(spec, task_queue=q)) for n, spec in scenarios(q).items()}
    jobs["async_completion"] = async_completion(client, q, worker_log)
    return await gather_named(jobs)


async def run_specs(client: Client, specs: dict) -> dict:
    return await gather_named({n: run_spec(client, spec) for n, spec in specs.items()})


async def outbox(client: Client, q: str) -> dict:
    """A 4 s activity; the test restarts the server while it runs."""
    spec = {"task_queue": q, "activity": "sleep", "args": [{"ms": 4000}], "start_to_close_ms": 120000}
    handle = await client.start_workflow(
        RunActivity.run, spec, id=f"wharf-outbox-{uuid.uuid4()}", task_queue=WORKFLOW_QUEUE
    )
    await wait_started(handle, 1)
    print("started", flush=True)
    # The server goes away and comes back: keep asking.
    deadline = time.monotonic() + 90
    while True:
        try:
            return await handle.result()
        except Exception as e:  # noqa: BLE001 - the server is restarting
            if time.monotonic() > deadline:
                raise
            print(f"waiting for the server: {e!r}", file=sys.stderr, flush=True)
            await asyncio.sleep(0.5)


async def shutdown(client: Client, q: str) -> dict:
    """A short and a long activity; the test stops the worker while both run."""
    short = {"task_queue": q, "activity": "sleep", "args": [{"ms": 1500}], "retry": {"max_attempts": 1}}
    long = {
        "task_queue": q,
        "activity": "sleep",
        "args": [{"ms": 60000, "heartbeat_every_ms": 100}],
        "start_to_close_ms": 120000,
        "retry": {"max_attempts": 1},
    }
    handles = [
        await client.start_workflow(RunActivity.run, s, id=f"wharf-shutdown-{uuid.uuid4()}", task_queue=WORKFLOW_QUEUE)
        for s in (short, long)
    ]
    for h in handles:
        await wait_started(h, 1)
    print("started", flush=True)
    short_r, long_r = await asyncio.gather(*(h.result() for h in handles))
    return {"short": short_r, "long": long_r}


async def wait_started(handle, count: int, timeout: float = 30) -> None:
    """Waits until `count` activities of the workflow are running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d = await handle.describe()
        running = [p for p in d.raw_description.pending_activities if p.state == 2]  # STARTED
        if len(running) >= count:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the activity did not start")


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--address", required=True)
    p.add_argument("--task-queue", default="")
    p.add_argument("--worker-log", default="")
    p.add_argument("mode", choices=["all", "specs", "outbox", "shutdown"])
    args = p.parse_args()
    client = await Client.connect(args.address)
    async with Worker(
        client,
        task_queue=WORKFLOW_QUEUE,
        workflows=[RunActivity],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        if args.mode == "all":
            out = await run_all(client, args.task_queue, args.worker_log)
        elif args.mode == "specs":
            out = await run_specs(client, json.load(sys.stdin))
        elif args.mode == "outbox":
            out = await outbox(client, args.task_queue)
        else:
            out = await shutdown(client, args.task_queue)
        # Printed before the worker's shutdown, which need not be waited for.
        print(json.dumps(out, default=repr), flush=True)
        os._exit(0)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except BaseException as e:  # noqa: BLE001
        print(f"driver failed: {e!r}", file=sys.stderr, flush=True)
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    os._exit(0)
