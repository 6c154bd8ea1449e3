"""``sippet demo --fleet``: several ``sippet worker`` processes on one Redis call queue.

Against an embedded fake Sippet server that admits ``RATE`` calls per rolling second and
loses some replies after committing, and a throwaway ``redis-server``, the demo queues
calls, starts worker processes that share one rate limit through Redis (``--rate-key``),
SIGKILLs one of them mid-run, waits until every job has its outcome, stops the rest with
SIGTERM and prints a table checked against the server's own records: one call per job,
none twice, none unresolved, and the workers together within the one limit. It needs the
[redis] extra and a ``redis-server`` on PATH.
"""

from __future__ import annotations

import asyncio
import collections
import os
import secrets
import signal
import sys
import time
from typing import Any, Final

from sippet_async._cli._demo import DemoFailure, _check, _say
from sippet_async._cli._fleet import redis_parts
from sippet_async.testing import FakeSippet, Faults, RedisServer, RedisServerError, worst_window

__all__ = ["run_fleet_demo"]

RATE: Final = 100  # calls per second: the account's limit, shared by every worker
FAULTS: Final = Faults(p_lost_after_commit=0.02, p_500=0.01, rate_limit=RATE,
                       only_actions=frozenset({"create_call"}))
RATE_KEY: Final = "demo:limit"
STREAM: Final = "demo:calls"
GROUP: Final = "dialers"
DEADLINE: Final = 120.0  # seconds the demo waits for every job's outcome
POLL: Final = 0.05


async def run_fleet_demo(*, seed: int = 7, calls: int = 300, workers: int = 3) -> int:
    """Run the fleet demo; returns the exit code (0 when every check holds)."""
    parts = redis_parts()
    key = "sk_test_" + secrets.token_hex(16)
    started = time.perf_counter()
    try:
        with RedisServer() as redis_server:
            async with FakeSippet(key, seed=seed, faults=FAULTS) as server, \
                    parts.RedisCallQueue(redis_server.url, stream=STREAM,
                                         group=GROUP) as queue:
                _say(f"fake Sippet at {server.url} (at most {RATE} create_call per rolling "
                     f"second, 2% of their replies lost after commit, 1% HTTP 500); "
                     f"redis-server at {redis_server.url}")
                for i in range(calls):
                    await queue.put({"toE164": f"+1555{i:07d}"}, job_id=f"call-{i}")
                _say(f"queued {calls} calls on {STREAM}; starting {workers} workers sharing "
                     f"one limit of {RATE}/s (--rate {RATE} --rate-key {RATE_KEY})")
                outputs = await _run_workers(redis_server.url, server, queue, key, workers)
                outcomes = [await queue.outcome(f"call-{i}") for i in range(calls)]
                _table(server, outcomes, outputs, calls)
    except RedisServerError as exc:
        print(f"demo needs redis-server: {exc}", file=sys.stderr)
        return 1
    except DemoFailure as exc:
        print(f"demo FAILED: {exc}", file=sys.stderr)
        return 1
    _say(f"\nfleet demo finished in {time.perf_counter() - started:.1f}s")
    return 0


async def _run_workers(url: str, server: FakeSippet, queue: Any, key: str,
                       workers: int) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDEVMODE"}
    env["SIPPET_SECRET_KEY"] = key
    argv = [sys.executable, "-m", "sippet_async", "worker", "--redis", url, "--stream",
            STREAM, "--group", GROUP, "--reconcile-by", "toE164", "--base-url", server.url,
            "--timeout", "1", "--heartbeat", "1", "--rate", str(RATE), "--rate-key", RATE_KEY,
            "--concurrency", "8"]
    procs = [await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        for _ in range(workers)]
    calls = await queue.length()
    deadline = time.monotonic() + DEADLINE
    try:
        while len(server.calls) < calls // 3:
            await _tick(procs, deadline)
        procs[0].send_signal(signal.SIGKILL)
        _say(f"SIGKILLed worker 1 (pid {procs[0].pid}) after {len(server.calls)} calls; "
             "its jobs are taken over once its heartbeat expires")
        while not await _all_done(queue):
            await _tick(procs, deadline)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        outputs = [(await proc.communicate())[0].decode().strip() for proc in procs]
    for n, (proc, out) in enumerate(zip(procs, outputs, strict=True), 1):
        _say(f"  worker {n}: " + (out or f"killed (exit {proc.returncode})"))
    return outputs


async def _tick(procs: list[asyncio.subprocess.Process], deadline: float) -> None:
    if all(p.returncode is not None for p in procs) or time.monotonic() > deadline:
        raise DemoFailure("the workers did not finish the queue")
    await asyncio.sleep(POLL)


async def _all_done(queue: Any) -> bool:
    """Each outcome is written with its acknowledgement: nothing pending, nothing unread."""
    groups: Any = await queue.ledger._redis.xinfo_groups(STREAM)
    group = next((g for g in groups if g["name"] == GROUP.encode()), None)
    return group is not None and group["pending"] == 0 and group["lag"] == 0


def _table(server: FakeSippet, outcomes: list[Any], outputs: list[str], calls: int) -> None:
    statuses = collections.Counter(o.status if o is not None else "none" for o in outcomes)
    per_number = collections.Counter(c["toE164"] for c in server.calls)
    ids = {c["id"] for c in server.calls}
    succeeded = [o for o in outcomes if o is not None and o.status == "succeeded"]
    lost = sum(o.record_id not in ids for o in succeeded)
    twice = sum(n > 1 for n in per_number.values())
    reconciled = sum(o.reconciled for o in succeeded)
    faults = collections.Counter(r.fault for r in server.requests if r.fault)
    dials = [r.received_at for r in server.requests if r.action == "create_call"]
    worst = worst_window(dials)
    _say("\nsummary, checked against the fake server's own records:")
    _say(f"  {'':<16}{'jobs':>6}{'recorded':>10}{'server':>8}{'twice':>7}{'lost':>6}"
         f"{'unresolved':>12}")
    _say(f"  {'calls placed':<16}{calls:>6}{len(succeeded):>10}{len(server.calls):>8}"
         f"{twice:>7}{lost:>6}{statuses['none'] + statuses['unknown']:>12}")
    _say(f"  create_call requests: {len(dials)}, at most {worst} in any rolling second "
         f"(the limit: {RATE}; {faults['rate_limited']} over it, answered 429)")
    _say(f"  faults injected: {dict(sorted(faults.items()))}; resolved by a lookup: "
         f"{reconciled}")
    _check(len(succeeded) == calls == len(server.calls),
           f"{calls} jobs, {calls} recorded succeeded, {calls} calls on the server")
    _check(twice == 0, "no number dialled twice, despite the SIGKILL and the lost replies")
    _check(lost == 0, "every recorded call id is on the server")
    # A limit per worker lets them send up to workers x RATE, and the server answers 429
    # to every request over its limit (3-5% of them here); the shared limit keeps them to
    # RATE. One in a hundred covers arrival jitter on a busy machine.
    over = faults["rate_limited"]
    _check(over <= len(dials) // 100,
           f"the workers shared one limit: {over} of {len(dials)} create_call over it "
           f"(at most {worst} in a rolling second for {RATE}/s)")
    _check(sum(bool(out) for out in outputs) == len(outputs) - 1,
           "the surviving workers stopped cleanly on SIGTERM")
