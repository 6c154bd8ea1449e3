"""Call workers of a fleet: N worker processes on one Redis queue, some SIGKILLed mid-run.

    python benchmarks/bench_fleet_calls.py [--jobs 1000] [--workers 4] [--kills 2] [--tiny]

Issue 13's target: 1,000 create_call jobs, 4 `sippet worker` processes, two of them
SIGKILLed during the run, 2% of create_call replies lost after the server committed:
at most 1 dial per number, 0 unresolved jobs, finished within the work time (the same run
without kills) + the takeover delay + 2 s. Dials are counted from the fake server's own
records, outcomes from the queue's records in a real redis-server.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import redis.asyncio as aioredis

from sippet_async import Outcome
from sippet_async.redis import RedisCallQueue
from sippet_async.testing import FakeSippet, Faults, RedisServer

KEY: Final = "sk_test_bench_fleet_0123456789"
PHONE: Final = "+1555{:07d}"
TIMEOUT: Final = 1.0  # request timeout of the workers: takeover waits longer than this
HEARTBEAT: Final = 1.0
CLAIM_IDLE: Final = TIMEOUT + 1.0  # the workers' default: the timeout plus one second
# A dead worker's job: its heartbeat expires, the entry idles past CLAIM_IDLE (both run
# from about the same moment), then a live worker's next scan (every HEARTBEAT / 2).
TAKEOVER: Final = max(HEARTBEAT, CLAIM_IDLE) + HEARTBEAT / 2
POLL: Final = 0.05  # how often the harness looks at the server's and Redis's records


@dataclass
class Run:
    """The figures of one run."""

    jobs: int
    workers: int
    kills: int
    seconds: float  # from the first job queued (workers waiting) to the last outcome
    dials: int  # create_call executed by the server
    dialled_twice: int  # numbers with more than one call
    unresolved: int  # jobs without an outcome, or with status unknown
    statuses: dict[str, int]
    lost_replies: int  # create_call replies the server dropped after committing
    lookups: int  # list_calls sent: one per lost reply, plus one per job taken over in doubt
    killed_at: list[int]  # dials when each SIGKILL was sent


NAIVE: Final = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_naive_call_worker.py")


def _worker(url: str, server: FakeSippet, stream: str, rate: float, naive: bool) -> list[str]:
    if naive:  # the comparison: no outcome record, blind re-dial of what stays pending
        return [sys.executable, NAIVE, url, stream, server.url, str(rate)]
    return [sys.executable, "-m", "sippet_async", "worker", "--redis", url, "--rate", str(rate),
            "--stream", stream, "--group", "dialers", "--reconcile-by", "toE164",
            "--base-url", server.url, "--timeout", str(TIMEOUT),
            "--heartbeat", str(HEARTBEAT), "--concurrency", "16", "--grace", "5"]


async def _fill(queue: RedisCallQueue[dict[str, str]], jobs: int) -> None:
    for i in range(jobs):
        await queue.put({"toE164": PHONE.format(i)}, job_id=f"j{i}")


async def _until(condition: Callable[[], bool | Awaitable[bool]]) -> None:
    """Return once ``condition()`` holds, looking every POLL seconds."""
    for _ in itertools.count():
        result = condition()
        if result if isinstance(result, bool) else await result:
            return
        await asyncio.sleep(POLL)


async def _alive(connection: aioredis.Redis, stream: str, workers: int) -> bool:
    return len(await connection.keys(f"{stream}:alive:*")) >= workers


async def _all_acked(connection: aioredis.Redis, stream: str) -> bool:
    """Every queued job is done: its outcome is written with its acknowledgement, so
    nothing pending and nothing unread means every record holds an outcome."""
    groups: Any = await connection.xinfo_groups(stream)
    group = next((g for g in groups if g["name"] == b"dialers"), None)
    return group is not None and group["pending"] == 0 and group["lag"] == 0


async def run(*, jobs: int = 1000, workers: int = 4, kills: int = 2,
              lost: float = 0.02, latency: float = 0.005, rate: float = 100.0,
              naive: bool = False) -> Run:
    """One run on a fresh fake server and a fresh redis-server; ``rate``: requests per
    second of each worker (the calls take a while, so the kills land mid-run); ``naive``:
    run the naive Streams worker instead of ``sippet worker``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDEVMODE"}
    env["SIPPET_SECRET_KEY"] = KEY
    stream = "bench:calls"
    with RedisServer() as redis_server:
        async with FakeSippet(KEY, seed=13, latency=latency) as server, \
                RedisCallQueue[dict[str, str]](redis_server.url, stream=stream) as queue, \
                aioredis.Redis.from_url(redis_server.url) as connection:
            server.faults = Faults(p_lost_after_commit=lost,
                                   only_actions=frozenset({"create_call"}))
            procs = [await asyncio.create_subprocess_exec(
                *_worker(redis_server.url, server, stream, rate, naive), env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
                for _ in range(workers)]
            killed_at: list[int] = []
            filling: asyncio.Task[None] | None = None
            try:
                # Python starts slowly on a busy machine: time the work, not the imports.
                await _until(lambda: _alive(connection, stream, workers))
                started = time.perf_counter()
                filling = asyncio.create_task(_fill(queue, jobs))
                for k in range(kills):  # spread the kills over the run
                    target = jobs * (k + 1) // (kills + 1)
                    await _until(lambda target=target: len(server.calls) >= target)
                    procs[k].send_signal(signal.SIGKILL)
                    killed_at.append(len(server.calls))
                await filling

                async def finished() -> bool:
                    if all(p.returncode is not None for p in procs):
                        raise RuntimeError("every worker has exited before the end")
                    return await _all_acked(connection, stream)

                await _until(finished)
                seconds = time.perf_counter() - started
            finally:
                if filling is not None:
                    filling.cancel()
                for proc in procs:
                    if proc.returncode is None:
                        proc.send_signal(signal.SIGTERM)
                for proc in procs:
                    await proc.communicate()
            outcomes = [await queue.outcome(f"j{i}") for i in range(jobs)]
            if naive:  # it keeps no outcome: a job is done once acknowledged
                outcomes = [Outcome(i, None, "succeeded") for i in range(jobs)]
            per_number = collections.Counter(c["toE164"] for c in server.calls)
            lost_replies = sum(1 for r in server.requests if r.fault == "lost_after_commit")
            lookups = sum(1 for r in server.requests if r.action == "list_calls")
    statuses = collections.Counter(o.status if o else "none" for o in outcomes)
    return Run(jobs, workers, kills, seconds, sum(per_number.values()),
               sum(1 for n in per_number.values() if n > 1),
               statuses["none"] + statuses["unknown"], dict(statuses), lost_replies,
               lookups, killed_at)


def _row(label: str, result: Run) -> str:
    return (f"{label:<22} {result.seconds:6.2f}s  dials {result.dials:5d}  "
            f"dialled twice {result.dialled_twice}  unresolved {result.unresolved}  "
            f"lost replies {result.lost_replies}  lookups {result.lookups}  "
            f"kills at dials {result.killed_at}")


async def _main(jobs: int, workers: int, kills: int, rate: float) -> int:
    print(f"{jobs} create_call jobs, {workers} worker processes at {rate:g} requests/s "
          f"each, 2% of replies lost after commit; request timeout {TIMEOUT:g}s, "
          f"heartbeat {HEARTBEAT:g}s, takeover delay <= {TAKEOVER:g}s")
    base = await run(jobs=jobs, workers=workers, kills=0, rate=rate)
    print(_row("no kills (work time)", base))
    killed = await run(jobs=jobs, workers=workers, kills=kills, rate=rate)
    print(_row(f"{kills} SIGKILLs", killed))
    bound = base.seconds + TAKEOVER + 2.0
    checks = [
        ("at most 1 dial per number", killed.dialled_twice == 0 and base.dialled_twice == 0),
        ("0 unresolved jobs", killed.unresolved == 0 and base.unresolved == 0),
        (f"finished within work time + takeover + 2 s ({bound:.2f}s)",
         killed.seconds <= bound),
    ]
    for name, ok in checks:
        print(f"target: {name}: {'met' if ok else 'MISSED'}")
    print(f"outcomes: {killed.statuses}")
    naive = await run(jobs=jobs, workers=workers, kills=kills, rate=rate, naive=True)
    print(_row("naive Streams worker", naive))
    return 0 if all(ok for _, ok in checks) else 1


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--rate", type=float, default=100.0, help="per worker, requests/s")
    parser.add_argument("--tiny", action="store_true", help="a smoke run: 120 jobs")
    args = parser.parse_args(argv)
    if args.tiny:
        args.jobs, args.rate = 120, 25.0
    return asyncio.run(_main(args.jobs, args.workers, args.kills, args.rate))


if __name__ == "__main__":
    sys.exit(main())
