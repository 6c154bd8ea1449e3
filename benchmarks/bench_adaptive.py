"""The adaptive rate against pushback: goodput, 429s, sends inside pauses, idle time.

Run by hand (figures are printed, nothing is asserted):

    python benchmarks/bench_adaptive.py                  # the four scenarios, 12 s each
    python benchmarks/bench_adaptive.py --scenarios shared,unknown --seconds 6
    python benchmarks/bench_adaptive.py --tiny           # a quick smoke run
    python benchmarks/bench_adaptive.py --scenarios shared --trace   # second by second

Each scenario starts a fresh fake server in its own process and has 64 tasks call
``create_contact`` in a loop (a failed call is counted and the task goes on) for
``--seconds``, first with ``sippet_async``, then with the anchor: an unlimited client with
no retries behind a hand-written loop (``aiolimiter.AsyncLimiter(R, 1)`` when there is an
R, and each task sleeping its own ``Retry-After`` after a 429 / 503, then sending again).

| scenario | server | client |
|---|---|---|
| shared | at most 300 requests in any rolling second (429 above) | ``rate_limit=600`` |
| unknown | the same | ``rate_limit=None`` |
| stray | no limit; 0.2% of replies 503 with ``Retry-After: 0`` | ``rate_limit=500`` |
| pauses | no limit; 0.2% of replies 503 with ``Retry-After: 1`` | ``rate_limit=500`` |
| demo | ``sippet demo``'s mix (below) | ``rate_limit=1000`` |

``demo`` is the fault mix of ``sippet demo``: at most 1,000 requests per rolling second;
1% 500s, 1% resets, 0.5% replies lost after the commit, 0.1% 503s and 0.1% 429s with
``Retry-After: 0.1``.

Figures come from the server's own records (arrival times on the shared monotonic clock):

* ``sent / limit``: requests that reached the server per second, over the limit below;

* ``goodput / limit``: creates the server executed per second, over the server's limit
  (shared, unknown, demo) or R (stray, pauses);
* ``/ unpaused``: the same over R x the share of the run outside ``Retry-After`` pauses;
* ``429s``: the share of requests answered 429;
* ``in pause``: requests the client sent inside a pause, on the client's clock: after a
  503 or 429 began one and before its ``Retry-After`` passed (an observer stamps each
  attempt as it is handed to the transport, and each pause as it begins, with the wait
  the reply asked for: a scripted 503's, or a rolling-limit 429's exact one);
* ``idle``: seconds outside pauses in gaps of more than 50 ms between arrivals at the
  server;
* ``paced / limit``: sippet_async only, the limiter's own rate averaged over the run
  (sampled every 0.1 s; 0 while ``rate_limit=None`` has no limiter yet): what the adaptive
  policy asked for, so a run starved of CPU (sent well under paced) shows as such.

Targets (issue 12): shared >= 0.90 with 429s <= 2%; unknown >= 0.85 with 429s <= 5%;
stray >= 0.90; pauses >= 0.85 of the unpaused rate, 0 requests in a pause; demo >= 0.85.
The demo's target is read over its unpaused time too: at 1,000/s its 0.1% 503s and 0.1%
429s with ``Retry-After: 0.1`` pause the client for ~15-20% of the run, which no client
that honours ``Retry-After`` can send through.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiolimiter import AsyncLimiter

from sippet_async import (
    Observer,
    PauseEvent,
    RateLimit,
    RequestEvent,
    RetryPolicy,
    SippetClient,
    SippetError,
)

KEY = "sk_test_bench_adaptive_0123456789"
WORKERS = 64
IDLE_GAP = 0.05  # seconds between arrivals that count as idle


@dataclass(frozen=True)
class Scenario:
    """One server script and the client's rate limit."""

    name: str
    faults: dict[str, float]  # the server's ``Faults``
    rate_limit: float | None  # the client's

    @property
    def limit(self) -> float:
        """The rate goodput is measured against: the server's limit, else the client's."""
        limit = self.faults.get("rate_limit") or self.rate_limit
        assert limit is not None
        return float(limit)

    @property
    def retry_after(self) -> float:
        """The ``Retry-After`` of the scripted 503s and 429s (0: none scripted)."""
        if not self.faults.get("p_503") and not self.faults.get("p_429"):
            return 0.0
        return self.faults.get("retry_after", 1.0)


SCENARIOS = {
    "shared": Scenario("shared", {"rate_limit": 300}, 600),
    "unknown": Scenario("unknown", {"rate_limit": 300}, None),
    "stray": Scenario("stray", {"p_503": 0.002, "retry_after": 0.0}, 500),
    "pauses": Scenario("pauses", {"p_503": 0.002, "retry_after": 1.0}, 500),
    # sippet_async/_cli/_demo.py's FAULTS
    "demo": Scenario("demo", {"p_500": 0.01, "p_503": 0.001, "p_429": 0.001,
                              "p_reset_before": 0.01, "p_lost_after_commit": 0.005,
                              "retry_after": 0.1, "rate_limit": 1000}, 1000),
}


@dataclass(frozen=True)
class Row:
    """What the server saw during one run."""

    sent: float  # requests that reached the server per second / limit
    goodput: float  # executed creates per second / limit
    unpaused: float  # the same / (R x share of the run not paused)
    limited: float  # share of requests answered 429
    in_pause: int  # requests that arrived inside a pause
    idle: float  # seconds without arrivals outside pauses
    paced: float | None = None  # the limiter's mean rate / limit (sippet_async)


_SERVER = """
import asyncio, gc, json, sys, time
from sippet_async.testing import FakeSippet, Faults

async def main():
    faults = Faults(**json.loads(sys.argv[2]))
    async with FakeSippet(sys.argv[1], faults=faults, clock=time.monotonic) as server:
        gc.freeze()  # the startup heap out of the collector (docs/design.md, register)
        print(server.url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        print(json.dumps([[r.received_at, r.status, r.executed] for r in server.requests]),
              flush=True)

asyncio.run(main())
"""


class Server:
    """The fake server in its own process; its records come back as
    ``(received_at, status, executed)``."""

    def __init__(self, scenario: Scenario) -> None:
        script = json.dumps(scenario.faults)
        self._proc = subprocess.Popen([sys.executable, "-c", _SERVER, KEY, script],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        self.url = self._proc.stdout.readline().strip()

    def records(self) -> list[tuple[float, int, bool]]:
        """Stop the server and return what it recorded."""
        out, _ = self._proc.communicate("dump\n", timeout=60)
        return [(t, status, executed) for t, status, executed in json.loads(out)]


class Stamps(Observer):
    """The client's send times and the pauses it began: each ``Retry-After`` as the
    server sent it (a scripted 503's, or the exact wait of a rolling-limit 429)."""

    def __init__(self) -> None:
        self.sent: list[float] = []
        self.pauses: list[tuple[float, float]] = []

    def on_request(self, event: RequestEvent) -> None:
        self.sent.append(time.monotonic())

    def on_pause(self, event: PauseEvent) -> None:
        now = time.monotonic()
        self.pauses.append((now, now + event.wait))


async def drive(send: Callable[[dict[str, str]], Awaitable[Any]], seconds: float,
                rate: Callable[[], float] | None = None) -> list[float]:
    """``WORKERS`` tasks create contacts in a loop; after ``seconds`` they are cancelled.
    Returns ``rate()`` sampled every 0.1 s."""
    numbers = itertools.count()
    samples: list[float] = []

    async def worker() -> None:
        while True:
            i = next(numbers)
            await send({"fullName": f"Person {i}", "phoneE164": f"+1{i:010d}"})

    tasks = [asyncio.create_task(worker()) for _ in range(WORKERS)]
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        await asyncio.sleep(min(0.1, left))
        if rate is not None:
            samples.append(rate())
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return samples


async def run_one(kind: str, scenario: Scenario, seconds: float,
                  trace: bool = False) -> Row:
    """One client against a fresh fake server (``trace``: print its run second by second)."""
    server = Server(scenario)
    stamps = Stamps()
    rate: Callable[[], float] | None = None
    if kind == "sippet_async":
        client = SippetClient(KEY, base_url=server.url, rate_limit=scenario.rate_limit,
                              max_concurrency=WORKERS, hooks=stamps)

        def rate() -> float:  # a figure only: the limiter a 429 may have created
            limiter = client._limits.limiter
            return limiter.rate if isinstance(limiter, RateLimit) else 0.0

        async def send(contact: dict[str, str]) -> Any:
            try:
                return await client.run("create_contact", input=contact, fields=["id"])
            except SippetError:
                return None
    else:
        per_second = scenario.rate_limit
        limiter = AsyncLimiter(per_second, 1.0) if per_second is not None else None
        client = SippetClient(KEY, base_url=server.url, max_concurrency=WORKERS,
                              retry=RetryPolicy(attempts=1), hooks=stamps)

        async def send(contact: dict[str, str]) -> Any:
            while True:
                if limiter is not None:
                    await limiter.acquire()
                try:
                    return await client.run("create_contact", input=contact, fields=["id"])
                except SippetError as exc:
                    wait = getattr(exc, "retry_after", None)
                    if wait is None:
                        return None
                    await asyncio.sleep(wait)

    async with client:
        start = time.monotonic()  # the server stamps arrivals with the same clock
        samples = await drive(send, seconds, rate)
    end = start + seconds
    records = [r for r in server.records() if start <= r[0] < end]
    row = measure(records, stamps, scenario, start, end)
    if trace:
        print_trace(records, samples, start, seconds)
    if samples:
        row = dataclasses.replace(row, paced=sum(samples) / len(samples) / scenario.limit)
    return row


def measure(records: Sequence[tuple[float, int, bool]], stamps: Stamps, scenario: Scenario,
            start: float, end: float) -> Row:
    """The figures of one run from the server's records within ``[start, end)`` and the
    client's stamps."""
    seconds = end - start
    pauses = merged([(a, min(end, b)) for a, b in stamps.pauses if b > a and a < end])
    paused = sum(b - a for a, b in pauses)
    in_pause = sum(1 for t in stamps.sent if any(a < t < b for a, b in pauses))
    times = sorted(t for t, _, _ in records)
    idle = 0.0
    for a, b in itertools.pairwise([start, *times, end]):
        if b - a > IDLE_GAP:
            idle += (b - a) - overlap((a, b), pauses)
    executed = sum(1 for _, _, done in records if done)
    goodput = executed / seconds / scenario.limit
    return Row(sent=len(records) / seconds / scenario.limit, goodput=goodput,
               unpaused=goodput * seconds / max(seconds - paused, 1e-9),
               limited=sum(1 for _, status, _ in records if status == 429)
               / max(1, len(records)),
               in_pause=in_pause, idle=idle)


def print_trace(records: Sequence[tuple[float, int, bool]], samples: list[float],
                start: float, seconds: float) -> None:
    """Per second: the limiter's rate at its end, requests that reached the server,
    creates executed, 429s."""
    print(f"  {'second':>8}{'paced /s':>10}{'sent':>7}{'executed':>10}{'429s':>6}")
    for k in range(int(seconds)):
        inside = [r for r in records if start + k <= r[0] < start + k + 1]
        paced = samples[min(len(samples), 10 * k + 10) - 1] if samples else float("nan")
        print(f"  {k:>3}-{k + 1:<4}{paced:>10.0f}{len(inside):>7}"
              f"{sum(1 for r in inside if r[2]):>10}"
              f"{sum(1 for r in inside if r[1] == 429):>6}")


def merged(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping spans joined."""
    out: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def overlap(span: tuple[float, float], spans: list[tuple[float, float]]) -> float:
    """Seconds of ``span`` covered by ``spans`` (disjoint)."""
    return sum(max(0.0, min(span[1], b) - max(span[0], a)) for a, b in spans)


KINDS = ("sippet_async", "anchor")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help="comma-separated: " + ", ".join(SCENARIOS))
    parser.add_argument("--seconds", type=float, default=12.0, help="seconds per run")
    parser.add_argument("--tiny", action="store_true", help="a quick smoke run")
    parser.add_argument("--trace", action="store_true",
                        help="print sippet_async's run second by second")
    args = parser.parse_args(argv)
    names = args.scenarios.split(",")
    seconds = args.seconds
    if args.tiny:
        seconds = 0.5
    print(f"bench_adaptive: {seconds:g} s per run, {WORKERS} tasks creating contacts, python "
          f"{sys.version.split()[0]}; server: FakeSippet in its own process")
    print(f"{'scenario':<9}{'client':<14}{'sent / limit':>13}{'goodput / limit':>16}"
          f"{'/ unpaused':>12}{'429s':>8}{'in pause':>10}{'idle s':>8}{'paced / limit':>15}")
    for name in names:
        scenario = SCENARIOS[name]
        for kind in KINDS:
            row = asyncio.run(run_one(kind, scenario, seconds,
                                      args.trace and kind == "sippet_async"))
            print(f"{name:<9}{kind:<14}{row.sent:>13.3f}{row.goodput:>16.3f}"
                  f"{row.unpaused:>12.3f}"
                  f"{row.limited:>8.1%}{row.in_pause:>10}{row.idle:>8.2f}"
                  + (f"{row.paced:>15.3f}" if row.paced is not None else f"{'-':>15}"))
    print("targets: shared >= 0.90, 429s <= 2%; unknown >= 0.85, 429s <= 5%; stray >= 0.90; "
          "pauses / unpaused >= 0.85, 0 in pause; demo / unpaused >= 0.85")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
