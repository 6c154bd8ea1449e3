"""A bulk job through a server outage: connection attempts while down, failures, time lost.

Run by hand (figures are printed, nothing is asserted):

    python benchmarks/bench_outage.py                # 3,000 creates, 5 s outage, 5 runs
    python benchmarks/bench_outage.py --runs 10 --outage 10
    python benchmarks/bench_outage.py --tiny         # a quick smoke run

FakeSippet runs in its own process, so its CPU is not the client's, behind a TCP proxy
that takes orders on stdin: ``down`` is a crash (the proxy stops listening and resets
every connection: requests in flight are lost, new connections are refused), ``up``
listens again on the same port, in front of the same records. The job is
``client.bulk("create_contact", ...)`` at the client's default concurrency, no rate
limit. Once a third of the items have settled, the server goes down for ``--outage``
seconds. Per run:

* **connections while down**: new connections the client tried to open (aiohttp's trace
  hook ``on_connection_create_start``, on a borrowed session) from the moment the server
  went down to the moment it listens again (target <= 50); also **sent while down**, every
  HTTP attempt handed to the transport (``on_request`` hooks) in that time, including
  requests written into pooled connections the crash had already reset, before the
  client could know;
* **failed / unknown**: 0 failed; ``unknown`` only for requests in flight when it died,
  so at most the concurrency (the server's count of contacts per phone is checked too);
* **time lost**: the job's wall time minus the outage minus the job's time without an
  outage (the best of two runs, measured first), target <= 3 s.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import aiohttp

from sippet_async import BreakerEvent, Observer, RequestEvent, SippetClient

KEY = "sk_test_bench_outage_0123456789"


async def _serve() -> None:
    """FakeSippet behind an ``Outage`` proxy; orders on stdin, answers on stdout."""
    from sippet_async.testing import FakeSippet, Outage

    async with FakeSippet(KEY) as server:
        outage = Outage(server.url)
        await outage.up()
        print(outage.url, flush=True)
        loop = asyncio.get_running_loop()
        try:
            while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
                if line == "down":
                    outage.down()
                    print(line, time.monotonic(), flush=True)
                elif line == "up":
                    await outage.up()
                    print(line, time.monotonic(), flush=True)
                elif line == "count":
                    phones = collections.Counter(c["phoneE164"] for c in server.contacts)
                    print(json.dumps({"contacts": sum(phones.values()),
                                      "duplicated": sum(1 for n in phones.values() if n > 1)}),
                          flush=True)
        finally:
            await outage.aclose()


class Server:
    """FakeSippet in a subprocess that goes down and up when told."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.url = self._line()
        if not self.url.startswith("http"):
            raise RuntimeError("the outage server did not start")

    def _line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def order(self, word: str) -> str:
        """Send ``down``, ``up`` or ``count``; the server's answer."""
        assert self.process.stdin is not None
        self.process.stdin.write(word + "\n")
        self.process.stdin.flush()
        return self._line()

    async def switch(self, word: str) -> float:
        """``down`` or ``up``, without blocking the loop; when it was done (monotonic)."""
        answer = await asyncio.get_running_loop().run_in_executor(None, self.order, word)
        return float(answer.split()[1])

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.order("")
        self.process.wait(timeout=30)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


class Sends(Observer):
    """Stamps every HTTP attempt, and every change of the breaker, with the monotonic clock."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.changes: list[tuple[str, float]] = []

    def on_request(self, event: RequestEvent) -> None:
        self.times.append(time.monotonic())

    def on_breaker(self, event: BreakerEvent) -> None:
        self.changes.append((event.state, time.monotonic()))


def contacts(n: int, offset: int) -> Iterator[dict[str, Any]]:
    """``n`` distinct create_contact inputs."""
    return ({"fullName": f"Person {i}", "phoneE164": f"+1{i:010d}"}
            for i in range(offset, offset + n))


async def job(server: Server, n: int, offset: int, outage: float | None) -> dict[str, Any]:
    """One bulk job of ``n`` creates; with ``outage``, the server is down that long once a
    third of the items have settled."""
    sends = Sends()
    statuses: collections.Counter[str] = collections.Counter()
    window: list[float] = []
    third = asyncio.Event()

    async def take_down() -> None:
        await third.wait()
        window.append(await server.switch("down"))
        await asyncio.sleep(outage or 0.0)
        window.append(await server.switch("up"))

    connects: list[float] = []

    async def connecting(*_: Any) -> None:
        connects.append(time.monotonic())

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_start.append(connecting)
    # Borrowed only to count connection attempts (a trace hook); pooled like the client's own.
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64),
                                    trace_configs=[trace])
    async with session, SippetClient(KEY, base_url=server.url, hooks=sends,
                                     session=session) as client:
        controller = asyncio.create_task(take_down()) if outage else None
        start = time.perf_counter()
        async with client.bulk("create_contact", contacts(n, offset), fields=["id"]) as run:
            async for outcome in run:
                statuses[outcome.status] += 1
                if statuses.total() >= n // 3:
                    third.set()
        wall = time.perf_counter() - start
        if controller is not None:
            await controller
        counters = client.counters
    def during(times: list[float]) -> int:
        return sum(1 for t in times if window and window[0] <= t <= window[1])

    return {"wall": wall, "down": during(connects), "sent": during(sends.times),
            "statuses": statuses, "counters": counters,
            "concurrency": client.config.max_concurrency, "report": run.report.summary()}


def main(argv: Sequence[str] | None = None) -> int:
    """Print one line per run and the spread; returns 0."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--outage", type=float, default=5.0, help="seconds down")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tiny", action="store_true", help="a fast smoke run")
    parser.add_argument("--verbose", action="store_true", help="print each job's report")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(_serve(), debug=False)
        return 0
    if args.tiny:
        args.items, args.outage, args.runs = 300, 0.3, 1

    server = Server()
    try:
        normal = min(asyncio.run(job(server, args.items, k * 10**8, None), debug=False)["wall"]
                     for k in (1, 2))
        print(f"bulk create_contact x {args.items:,}, no rate limit; the server goes down "
              f"for {args.outage:g}s once a third have settled")
        print(f"  without an outage: {normal:.2f}s (best of 2)")
        print("  run  connections while down  sent while down  succeeded  failed  unknown  "
              "wall     lost  openings probes short-circuited")
        rows = []
        for r in range(args.runs):
            row = asyncio.run(job(server, args.items, (r + 3) * 10**8, args.outage),
                              debug=False)
            row["lost"] = row["wall"] - args.outage - normal
            rows.append(row)
            s, c = row["statuses"], row["counters"]
            print(f"  {r + 1:>3}  {row['down']:>22}  {row['sent']:>15}  {s['succeeded']:>9}  "
                  f"{s['failed']:>6}  "
                  f"{s['unknown']:>7}  {row['wall']:5.2f}s  {row['lost']:+5.2f}s  "
                  f"{getattr(c, 'breaker_openings', '-'):>8} {getattr(c, 'probes', '-'):>6} "
                  f"{getattr(c, 'short_circuited', '-'):>15}")
            if args.verbose:
                print(f"       {row['report']}")
        count = json.loads(server.order("count"))
    finally:
        server.close()

    downs = [row["down"] for row in rows]
    failed = [row["statuses"]["failed"] for row in rows]
    unknown = [row["statuses"]["unknown"] for row in rows]
    lost = [row["lost"] for row in rows]
    bound = rows[0]["concurrency"]
    sent = [row["sent"] for row in rows]
    print(f"  HTTP attempts sent while down: {min(sent)}..{max(sent)} "
          f"(median {statistics.median(sent):g}; including requests written into pooled "
          "connections the crash had already reset, before the client could know)")
    print(f"  connection attempts while down: {min(downs)}..{max(downs)} "
          f"(median {statistics.median(downs):g}; "
          f"target <= 50: {'met' if max(downs) <= 50 else 'MISSED'})")
    print(f"  failed: {min(failed)}..{max(failed)} (target 0: "
          f"{'met' if max(failed) == 0 else 'MISSED'}); unknown: {min(unknown)}..{max(unknown)}"
          f" (at most the {bound} in flight: {'met' if max(unknown) <= bound else 'MISSED'})")
    print(f"  time lost beyond the outage: {min(lost):+.2f}..{max(lost):+.2f}s "
          f"(target <= 3 s: {'met' if max(lost) <= 3.0 else 'MISSED'})")
    print(f"  server: {count['contacts']:,} contacts, {count['duplicated']} phones duplicated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
