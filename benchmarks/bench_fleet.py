"""A fleet of worker processes under one account's limit: figures printed side by side.

Run by hand (figures are printed, nothing is asserted):

    python benchmarks/bench_fleet.py                   # every section, 8 processes, R = 200
    python benchmarks/bench_fleet.py --only limiter --seconds 10
    python benchmarks/bench_fleet.py --only learn       # clients at 2R learn R
    python benchmarks/bench_fleet.py --only learn --trace   # ... second by second
    python benchmarks/bench_fleet.py --quick           # a small, quick smoke run

Sections (``--only`` picks some, comma-separated):

* ``limiter``: N processes call ``list_calls`` as fast as their clients let them against one
  FakeSippet (its own process) enforcing "at most R requests in any rolling second".
  ``shared``: every process uses one ``RedisRateLimit(key=..., rate=R)``; ``each at R/N``:
  every process its own ``rate_limit=R/N``, no Redis. Figures come from the server's
  records (arrivals on the machine's monotonic clock): ``achieved / R`` counts accepted
  requests per second of the run, ``429s`` the rejections (% of requests), ``worst / R``
  the most arrivals in any rolling second, the first included; ``rt / req`` Redis round
  trips per request sent; ``dropped`` slots reserved but not sent (woken too late, or
  voided by a pause).
* ``pause``: 4 processes; the server answers one request with 429 ``Retry-After: 1`` every
  2 s (besides its rolling limit, whose own 429s are not counted as pauses). ``in pause``
  counts requests that arrived from any process inside a pause (from 25 ms after the 429,
  so requests already in flight when it was answered are not counted; ``from 0 ms``
  counts those too), and ``last at`` how long after a 429 the last request inside a pause
  arrived, for the shared limit and for each process at R/N (whose pause gate is its own).
* ``learn``: 4 processes (fewer if ``--processes`` says so) whose clients are configured
  at 2R against the same server limited to R: the fleet's adaptive rate must learn R from
  the 429s. ``shared at 2R``: one ``RedisRateLimit(key=..., rate=2R)`` on a fresh key;
  ``each at 2R/N``: every process its own ``rate_limit=2R/N`` (adaptive too, on its own
  replies), what a team without the fleet would run. From the server's records as above,
  and ``after 2 s`` the same as ``achieved / R`` from 2 s into the run (the rate learned);
  ``learned / R`` the fleet's shared rate (``shared_rate()``) read as the run ends.
* ``acquire``: what one ``acquire()`` costs on loopback when the rate does not bind, p50 /
  p99: with ``batch=1`` (one Redis round trip each), and with the default batch.

Targets (issue 13): shared achieved >= 0.95 R, 429s <= 0.1%, worst <= 1.0 R, rt / req <=
0.15; 0 requests in pause; acquire <= 1.5 ms p50 / 10 ms p99. [learn], "the fleet as a
whole behaves like one well-behaved client": shared at 2R achieves >= 0.90 R after 2 s
with 429s <= 2% (the single client's shared-key targets in bench_adaptive.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sippet_async import RateLimiter, SippetClient, SippetError
from sippet_async.redis import RedisRateLimit
from sippet_async.testing import RedisServer, worst_window

KEY = "sk_test_bench_fleet_0123456789"
TASKS = 16  # per process
GRACE = 0.025  # seconds after a 429 in which requests already in flight may still land
LEARNED_FROM = 2.0  # seconds into a [learn] run: the rate learned, its figures count from here

_SERVER = """
import asyncio, gc, json, sys, time
from sippet_async.testing import FakeSippet, Faults, Reply

async def main():
    rate, throttle_every = int(sys.argv[2]), float(sys.argv[3])
    async with FakeSippet(sys.argv[1], faults=Faults(rate_limit=rate),
                          clock=time.monotonic) as server:
        gc.freeze()  # the startup heap out of the collector (docs/design.md, register)
        print(server.url, flush=True)
        async def throttle():
            # From the first request on; the next 429 only once the last one was sent.
            while not server.requests:
                await asyncio.sleep(0.01)
            while True:
                await asyncio.sleep(throttle_every)
                sent = sum(1 for r in server.requests if r.fault == "scripted")
                server.push_reply(Reply(status=429, body=b"429 Too Many Requests",
                                        headers={"Retry-After": "1"}))
                while sum(1 for r in server.requests if r.fault == "scripted") == sent:
                    await asyncio.sleep(0.01)
        task = asyncio.create_task(throttle()) if throttle_every > 0 else None
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        if task is not None:
            task.cancel()
        print(json.dumps([[r.received_at, r.status, r.fault] for r in server.requests]),
              flush=True)

asyncio.run(main())
"""


class Server:
    """The fake server in its own process, its records sent back as JSON."""

    def __init__(self, rate: int, throttle_every: float = 0.0) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER, KEY, str(rate), str(throttle_every)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        self.url = self._proc.stdout.readline().strip()

    def records(self) -> list[tuple[float, int | None, str | None]]:
        """Stop the server; what it recorded: arrival, status, fault (``scripted``: one
        of the 429s with ``Retry-After: 1``; ``rate_limited``: over the rolling limit)."""
        out, _ = self._proc.communicate("dump\n", timeout=120)
        return [(t, status, fault) for t, status, fault in json.loads(out)]



# -- one worker process ----------------------------------------------------------------------

async def _work(args: argparse.Namespace) -> dict[str, Any]:
    """One process of the fleet: TASKS tasks call as fast as the limiter lets them."""
    limiter: RateLimiter | float
    if args.mode == "shared":
        limiter = RedisRateLimit(args.redis, key=args.key, rate=args.rate)
    else:
        limiter = args.rate / args.processes
    client = SippetClient(KEY, base_url=args.url, rate_limit=limiter, max_concurrency=TASKS)

    async def worker() -> None:
        while True:
            # A 429 after its retries: keep going, the server counts it.
            with contextlib.suppress(SippetError):
                await client.run("list_calls", fields=["id"])

    async with client:
        # Ready: the parent sends the common start time once every process is.
        print("ready", flush=True)
        start_at = float(await asyncio.to_thread(sys.stdin.readline))
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        tasks = [asyncio.create_task(worker()) for _ in range(TASKS)]
        await asyncio.sleep(args.seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if isinstance(limiter, RedisRateLimit):
            # The round trips of the run, before the read of the fleet's rate adds one.
            result = {"round_trips": limiter.round_trips, "dropped": limiter.dropped}
            return {**result, "learned": await limiter.shared_rate()}
    return {"round_trips": 0, "dropped": 0, "learned": 0.0}


async def _acquire_costs(args: argparse.Namespace) -> dict[str, Any]:
    """Sequential acquires with a rate that does not bind: their durations, seconds."""
    out: dict[str, Any] = {}
    for batch in (1, 8):
        limiter = RedisRateLimit(args.redis, key=f"acquire-{batch}", rate=1_000_000,
                                 batch=batch)
        durations = []
        for _ in range(args.count):
            began = time.perf_counter()
            await limiter.acquire()
            durations.append(time.perf_counter() - began)
        await limiter.aclose()
        out[str(batch)] = durations
    return out


def _worker_main(args: argparse.Namespace) -> int:
    job = _acquire_costs if args.mode == "acquire" else _work
    print(json.dumps(asyncio.run(job(args))), flush=True)
    return 0


def _spawn(args: Sequence[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, "--worker", *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _start(processes: Sequence[subprocess.Popen[str]]) -> float:
    """Wait until every worker is ready, then start them all together; the start time."""
    for process in processes:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("a worker process did not start")
    start = time.monotonic() + 0.2
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(f"{start!r}\n")
        process.stdin.flush()
    return start


def _collect(processes: Sequence[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    results = []
    for process in processes:
        out, _ = process.communicate(timeout=300)  # (closes stdin)
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


# -- the sections ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One fleet run, as the server saw it."""

    achieved: float
    rejected: int
    sent: int
    worst: float
    round_trips: float
    after: float = 0.0  # achieved / R from LEARNED_FROM seconds into the run
    learned: float = 0.0  # the fleet's shared rate / R as the run ends (shared limit only)
    dropped: int = 0
    in_pause: int = 0
    in_pause_all: int = 0
    pauses: int = 0
    last: float = 0.0  # ms from a 429 to the last request inside its pause


def run_fleet(mode: str, processes: int, rate: int, seconds: float, redis_url: str,
              throttle_every: float = 0.0, limit: int | None = None,
              trace: Callable[[str], None] | None = None) -> Row:
    """N worker processes in ``mode`` against a fresh server limited to ``rate``; their
    clients configured for ``limit`` in all (default: ``rate``); ``trace``: print the run
    second by second."""
    server = Server(rate, throttle_every)
    key = f"bench-{uuid.uuid4().hex}"  # a fresh shared state (its learned rate) per run
    workers = [_spawn(["--mode", mode, "--url", server.url, "--redis", redis_url, "--key", key,
                       "--rate", str(limit or rate), "--processes", str(processes),
                       "--seconds", str(seconds)])
               for _ in range(processes)]
    start = _start(workers)
    results = _collect(workers)
    records = server.records()
    if trace is not None:
        print_trace(records, start, seconds, trace)
    in_run = [(t, s) for t, s, _ in records if start <= t < start + seconds]
    scripted = [t for t, _, fault in records if fault == "scripted"]
    learned_for = seconds - LEARNED_FROM
    return Row(achieved=sum(1 for _, s in in_run if s == 200) / seconds / rate,
               after=sum(1 for t, s in in_run if s == 200 and t >= start + LEARNED_FROM)
               / learned_for / rate if learned_for > 0 else 0.0,
               learned=results[0]["learned"] / rate,
               rejected=sum(1 for _, _, fault in records if fault == "rate_limited"),
               sent=len(records),
               worst=worst_window([t for t, _, _ in records]) / rate,
               round_trips=sum(r["round_trips"] for r in results) / max(1, len(records)),
               dropped=sum(r["dropped"] for r in results),
               in_pause=sum(1 for t, _, _ in records for p in scripted if p + GRACE < t < p + 1),
               in_pause_all=sum(1 for t, _, _ in records for p in scripted if p < t < p + 1),
               pauses=len(scripted),
               last=max((1000 * (t - p) for t, _, _ in records for p in scripted
                         if p < t < p + 1), default=0.0))


def print_trace(records: Sequence[tuple[float, int | None, str | None]], start: float,
                seconds: float, out: Callable[[str], None]) -> None:
    """Per second of the run, from the server's records: arrivals, accepted, 429s (over
    the rolling limit), and when in the second each 429 arrived."""
    out(f"    {'second':>8}{'arrivals':>10}{'accepted':>10}{'429s':>6}  429s at (s)")
    for k in range(math.ceil(seconds)):
        inside = [(t - start, status, fault) for t, status, fault in records
                  if start + k <= t < start + k + 1]
        limited = [t for t, _, fault in inside if fault == "rate_limited"]
        out(f"    {k:>3}-{k + 1:<4}{len(inside):>10}{sum(1 for _, s, _ in inside if s == 200):>10}"
            f"{len(limited):>6}  {' '.join(f'{t:.2f}' for t in limited)}".rstrip())


def limiter_section(args: argparse.Namespace, redis_url: str, out: Callable[[str], None]) -> None:
    """Shared RedisRateLimit vs each process at R/N."""
    out(f"\n[limiter] {args.processes} processes x {TASKS} tasks, R = {args.rate}/s, "
        f"{args.seconds:g} s per run")
    out(f"  {'limiter':<14}{'achieved / R':>14}{'429s':>14}{'worst / R':>11}{'rt / req':>10}"
        f"{'dropped':>9}")
    for mode, name in (("shared", "shared"), ("local", "each at R/N")):
        row = run_fleet(mode, args.processes, args.rate, args.seconds, redis_url)
        share = 100 * row.rejected / max(1, row.sent)
        rt, dropped = (f"{row.round_trips:.3f}", str(row.dropped)) if mode == "shared" \
            else ("-", "-")
        out(f"  {name:<14}{row.achieved:>14.3f}{row.rejected:>7} ({share:.2f}%)"
            f"{row.worst:>11.3f}{rt:>10}{dropped:>9}")


def pause_section(args: argparse.Namespace, redis_url: str, out: Callable[[str], None]) -> None:
    """A 429 with Retry-After: 1 every 2 s: requests from any process inside the pauses."""
    processes = min(4, args.processes)
    out(f"\n[pause] {processes} processes, R = {args.rate}/s, a 429 with Retry-After: 1 "
        f"every 2 s, {args.pause_seconds:g} s per run")
    out(f"  {'limiter':<14}{'pauses':>8}{'in pause':>10}{'from 0 ms':>11}{'last at':>11}")
    for mode, name in (("shared", "shared"), ("local", "each at R/N")):
        row = run_fleet(mode, processes, args.rate, args.pause_seconds, redis_url,
                        throttle_every=2.0)
        out(f"  {name:<14}{row.pauses:>8}{row.in_pause:>10}{row.in_pause_all:>11}"
            f"{row.last:>8.1f} ms")


def learn_section(args: argparse.Namespace, redis_url: str, out: Callable[[str], None]) -> None:
    """Clients configured at 2R: the shared limit learns R for the fleet; each process on
    its own learns from its own 429s."""
    processes = min(4, args.processes)
    seconds = 2.5 if args.quick else args.seconds
    out(f"\n[learn] {processes} processes x {TASKS} tasks, server limit R = {args.rate}/s, "
        f"clients configured at 2R, {seconds:g} s per run")
    out(f"  {'limiter':<14}{'achieved / R':>14}{f'after {LEARNED_FROM:g} s':>11}{'429s':>14}"
        f"{'worst / R':>11}{'learned / R':>13}")
    for mode, name in (("shared", "shared at 2R"), ("local", "each at 2R/N")):
        row = run_fleet(mode, processes, args.rate, seconds, redis_url, limit=2 * args.rate,
                        trace=out if args.trace else None)
        share = 100 * row.rejected / max(1, row.sent)
        learned = f"{row.learned:.3f}" if mode == "shared" else "-"
        out(f"  {name:<14}{row.achieved:>14.3f}{row.after:>11.3f}{row.rejected:>7} "
            f"({share:.2f}%){row.worst:>11.3f}{learned:>13}")


def acquire_section(args: argparse.Namespace, redis_url: str,
                    out: Callable[[str], None]) -> None:
    """What one acquire costs when the rate does not bind."""
    count = 300 if args.quick else 3000
    [result] = _collect([_spawn(["--mode", "acquire", "--redis", redis_url,
                                 "--count", str(count)])])
    out(f"\n[acquire] {count} sequential acquires, rate not binding, loopback Redis")
    for batch, durations in result.items():
        cuts = statistics.quantiles(durations, n=100)
        out(f"  batch={batch:<3} p50 {1000 * cuts[49]:.3f} ms   p99 {1000 * cuts[98]:.3f} ms")


SECTIONS: dict[str, Callable[[argparse.Namespace, str, Callable[[str], None]], None]] = {
    "limiter": limiter_section,
    "pause": pause_section,
    "learn": learn_section,
    "acquire": acquire_section,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--rate", type=int, default=200, help="R, requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per limiter run")
    parser.add_argument("--pause-seconds", type=float, default=8.0)
    parser.add_argument("--quick", action="store_true", help="a small, quick smoke run")
    parser.add_argument("--trace", action="store_true",
                        help="print each [learn] run second by second")
    # A worker process of the fleet (this script runs itself).
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for name in ("--mode", "--url", "--redis", "--key"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker_main(args)
    if args.quick:
        args.processes, args.rate, args.seconds, args.pause_seconds = 2, 50, 1.0, 2.5
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in only if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown sections {unknown}; known: {', '.join(SECTIONS)}")
    print(f"bench_fleet: python {sys.version.split()[0]}; server: FakeSippet with a "
          f"rolling-window limit of R/s; Redis: a local redis-server")
    with RedisServer() as redis_server:
        for name in only:
            SECTIONS[name](args, redis_server.url, print)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
