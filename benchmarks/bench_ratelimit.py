"""Rate limiting at the edge: achieved rate / R and the worst rolling second / R.

Run by hand (figures are printed, nothing is asserted):

    python benchmarks/bench_ratelimit.py                     # R = 50, 200, 1000; 5 s each
    python benchmarks/bench_ratelimit.py --rates 200 --seconds 10
    python benchmarks/bench_ratelimit.py --tiny              # a quick smoke run

For each R the fake server, in its own process, enforces "at most R requests in any
rolling second" (its ``Faults(rate_limit=R)``: the rest get 429 and are not executed), and
64 tasks call
``list_calls`` as fast as the client lets them for ``--seconds``. In one run, side by side:

* ``sippet_async``: ``SippetClient(rate_limit=R)`` (its default retry policy);
* ``aiolimiter default``: ``AsyncLimiter(R, 1)`` around an unlimited client with no retries,
  the configuration most code uses;
* ``aiolimiter 90%``: ``AsyncLimiter(0.9 R, 1)``, the usual conservative fix.

Figures come from the server's own records (arrival times on the machine's monotonic
clock): ``sent / R`` counts requests that arrived per second of the run, ``achieved / R``
those it accepted; ``worst window / R`` is the most requests that arrived in any rolling
second (accepted or not); ``429s`` counts rejections. ``client-side worst / R`` is the same
window over the client's own send times (taken by a hook as each attempt is handed to the
transport): the gap between the two columns is network and scheduling jitter.
Target (issue 4): achieved >= 0.98 R with zero 429s and a worst window <= 1.0 R, at
R = 50, 200 and 1000.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiolimiter import AsyncLimiter

from sippet_async import Observer, RateLimitError, RequestEvent, RetryPolicy, SippetClient
from sippet_async.testing import worst_window

KEY = "sk_test_bench_ratelimit_0123456789"
WORKERS = 64


@dataclass(frozen=True)
class Row:
    """What the server saw during one run."""

    sent: float  # requests that reached the server per second / R
    client_worst: float  # most requests the client sent in any rolling second / R
    achieved: float  # accepted requests per second / R
    worst: float  # most arrivals in any rolling second / R
    rejected: int  # 429s



async def drive(send: Callable[[], Awaitable[Any]], seconds: float) -> None:
    """``WORKERS`` tasks call ``send`` in a loop; after ``seconds`` they are cancelled (tasks
    still queued for a token would otherwise drain the queue at R/s)."""

    async def worker() -> None:
        while True:
            await send()

    tasks = [asyncio.create_task(worker()) for _ in range(WORKERS)]
    await asyncio.sleep(seconds)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


_SERVER = """
import asyncio, gc, json, sys, time
from sippet_async.testing import FakeSippet, Faults

async def main():
    async with FakeSippet(sys.argv[1], faults=Faults(rate_limit=int(sys.argv[2])),
                          clock=time.monotonic) as server:
        gc.freeze()  # the startup heap out of the collector (docs/design.md, register)
        print(server.url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        print(json.dumps([[r.received_at, r.status] for r in server.requests]), flush=True)

asyncio.run(main())
"""


class Server:
    """The fake server in its own process (so it has its own core and its own event loop);
    its records come back as ``(received_at, status)`` pairs on the shared monotonic clock."""

    def __init__(self, rate: int) -> None:
        self._proc = subprocess.Popen([sys.executable, "-c", _SERVER, KEY, str(rate)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        self.url = self._proc.stdout.readline().strip()

    def records(self) -> list[tuple[float, int | None]]:
        """Stop the server and return what it recorded."""
        out, _ = self._proc.communicate("dump\n", timeout=60)
        return [(t, status) for t, status in json.loads(out)]


class SendTimes(Observer):
    """Stamps each HTTP attempt as the client hands it to the transport."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_request(self, event: RequestEvent) -> None:
        self.times.append(time.monotonic())


async def run_one(kind: str, rate: int, seconds: float) -> Row:
    """One configuration against a fresh rate-limited fake server."""
    server = Server(rate)
    hooks = SendTimes()
    if kind == "sippet_async":
        client = SippetClient(KEY, base_url=server.url, rate_limit=rate,
                              max_concurrency=WORKERS, hooks=hooks)

        async def send() -> Any:
            return await client.run("list_calls", fields=["id"])
    else:
        share = 1.0 if kind == "aiolimiter default" else 0.9
        limiter = AsyncLimiter(share * rate, 1.0)
        client = SippetClient(KEY, base_url=server.url, max_concurrency=WORKERS,
                              retry=RetryPolicy(attempts=1), hooks=hooks)

        async def send() -> Any:
            async with limiter:
                try:
                    return await client.run("list_calls", fields=["id"])
                except RateLimitError:
                    return None

    async with client:
        start = time.monotonic()  # the server stamps arrivals with the same clock
        await drive(send, seconds)
    records = [(t, status) for t, status in server.records() if t >= start]
    in_run = [(t, status) for t, status in records if t < start + seconds]
    return Row(sent=len(in_run) / seconds / rate,
               client_worst=worst_window(hooks.times) / rate,
               achieved=sum(1 for _, status in in_run if status == 200) / seconds / rate,
               worst=worst_window([t for t, _ in records]) / rate,
               rejected=sum(1 for _, status in records if status == 429))


KINDS = ("sippet_async", "aiolimiter default", "aiolimiter 90%")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rates", default="50,200,1000", help="comma-separated R values")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--tiny", action="store_true", help="a quick smoke run")
    args = parser.parse_args(argv)
    rates = [int(r) for r in args.rates.split(",")]
    seconds = args.seconds
    if args.tiny:
        rates, seconds = [20], 0.5
    print(f"bench_ratelimit: {seconds:g} s per run, {WORKERS} tasks, python "
          f"{sys.version.split()[0]}; server: FakeSippet with a rolling-window limit of R/s")
    print(f"{'R':>6}  {'client':<20}{'sent / R':>10}{'achieved / R':>14}"
          f"{'worst window / R':>19}{'429s':>8}{'client-side worst / R':>24}")
    for rate in rates:
        for kind in KINDS:
            row = asyncio.run(run_one(kind, rate, seconds))
            print(f"{rate:>6}  {kind:<20}{row.sent:>10.3f}{row.achieved:>14.3f}"
                  f"{row.worst:>19.3f}{row.rejected:>8}{row.client_worst:>24.3f}")
    print("target: sippet_async achieved >= 0.98, worst window <= 1.000, 0 429s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
