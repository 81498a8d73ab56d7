"""No-op activities per second through one Temporal dev server: a `wharf
worker` running the Wasm `noop` component versus a native Python SDK worker
with a no-op activity. Driven by `scripts/bench-temporal`; not a test.

Both sides get the same workflows, run by a Python workflow worker in this
process: W workflows, each starting its share of the N activities at once
on the activity queue under test. The native Python activity worker runs
in a process of its own, as `wharf worker` does. Rounds alternate between
the two so that a warming server favours neither.
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

WORKFLOW_QUEUE = "bench-workflows"


@activity.defn(name="noop")
async def noop(*_args) -> None:
    return None


@workflow.defn
class FanOut:
    @workflow.run
    async def run(self, queue: str, count: int) -> int:
        await asyncio.gather(
            *(
                workflow.execute_activity(
                    "noop", task_queue=queue, start_to_close_timeout=timedelta(seconds=60)
                )
                for _ in range(count)
            )
        )
        return count


async def activity_worker(address: str, queue: str, max_concurrent: int) -> None:
    """The native Python side: a worker with only the no-op activity."""
    client = await Client.connect(address)
    worker = Worker(
        client,
        task_queue=queue,
        activities=[noop],
        max_concurrent_activities=max_concurrent,
    )
    print("ready", flush=True)
    await worker.run()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_round(client: Client, queue: str, n: int, workflows: int) -> float:
    per = [n // workflows + (1 if i < n % workflows else 0) for i in range(workflows)]
    started = time.monotonic()
    handles = [
        await client.start_workflow(
            FanOut.run,
            args=[queue, k],
            id=f"bench-{uuid.uuid4()}",
            task_queue=WORKFLOW_QUEUE,
        )
        for k in per
    ]
    done = sum(await asyncio.gather(*(h.result() for h in handles)))
    elapsed = time.monotonic() - started
    assert done == n
    return n / elapsed


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--address", required=True)
    p.add_argument("--wasm-queue", required=True, help="queue served by wharf worker")
    p.add_argument("-n", type=int, default=2000, help="activities per round")
    p.add_argument("--workflows", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--max-concurrent", type=int, default=100)
    p.add_argument("--wasm-pid", type=int, help="pid of the wharf worker, for its CPU time")
    p.add_argument("--server-pid", type=int, help="pid of the Temporal server, for its CPU time")
    p.add_argument("--activity-worker", metavar="QUEUE", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.activity_worker:
        await activity_worker(args.address, args.activity_worker, args.max_concurrent)
        return

    py_queue = f"bench-python-{uuid.uuid4().hex[:8]}"
    native = subprocess.Popen(
        [sys.executable, __file__, "--address", args.address, "--wasm-queue", "-",
         "--max-concurrent", str(args.max_concurrent), "--activity-worker", py_queue],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert native.stdout is not None and native.stdout.readline().strip() == "ready"
        client = await Client.connect(args.address)
        async with Worker(
            client,
            task_queue=WORKFLOW_QUEUE,
            workflows=[FanOut],
            workflow_runner=UnsandboxedWorkflowRunner(),
            max_concurrent_workflow_tasks=100,
        ):
            # Warm both paths (connections, pollers, the component's pool).
            for q in (args.wasm_queue, py_queue):
                await one_round(client, q, 200, 2)
            rates = {"wasm": [], "python": []}
            cpu = {"wasm": [], "python": []}
            pids = {"wasm": args.wasm_pid, "python": native.pid}
            for r in range(args.rounds):
                for name, q in (("wasm", args.wasm_queue), ("python", py_queue)):
                    watched = {"worker": pids[name], "server": args.server_pid, "workflows": os.getpid()}
                    before = {k: cpu_seconds(v) for k, v in watched.items() if v}
                    rate = await one_round(client, q, args.n, args.workflows)
                    used = {k: (cpu_seconds(watched[k]) - b) * 1e6 / args.n for k, b in before.items()}
                    rates[name].append(rate)
                    cpu[name].append(used.get("worker", 0.0))
                    per = ", ".join(f"{k} {v:5.0f}" for k, v in used.items())
                    print(f"round {r + 1}: {name:<6} {rate:8.1f} activities/s; CPU us/activity: {per}",
                          file=sys.stderr, flush=True)
            wasm = statistics.median(rates["wasm"])
            python = statistics.median(rates["python"])
            result = {
                "activities_per_round": args.n,
                "workflows": args.workflows,
                "rounds": args.rounds,
                "wasm_per_s": round(wasm, 1),
                "python_per_s": round(python, 1),
                "ratio": round(wasm / python, 3),
                "worker_cpu_us_per_activity": {k: round(statistics.median(v)) for k, v in cpu.items() if v},
                "all": {k: [round(x, 1) for x in v] for k, v in rates.items()},
            }
            print(f"no-op activities through one Temporal dev server: {args.n} per round, "
                  f"{args.workflows} workflows, median of {args.rounds} rounds")
            print(f"  wharf worker (Wasm noop):   {wasm:8.1f} activities/s")
            print(f"  Python SDK worker (native): {python:8.1f} activities/s")
            print(f"  ratio wasm/python:          {wasm / python:8.3f}")
            print(json.dumps(result), flush=True)
            native.kill()
            os._exit(0)
    finally:
        native.kill()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except BaseException as e:  # noqa: BLE001
        print(f"bench failed: {e!r}", file=sys.stderr, flush=True)
        os._exit(1)
    os._exit(0)
