"""Bulk create throughput vs a bare aiohttp loop, rate-limit utilisation, and peak RSS.

Run by hand (figures are printed, nothing is asserted):

    python benchmarks/bench_bulk.py                 # 11 x 3,000 creates; RSS at 100k and 1M
    python benchmarks/bench_bulk.py --creates 5000 --rss-sizes 100000
    python benchmarks/bench_bulk.py --tiny          # a quick smoke run

Instruction counts, steadier than time on a shared machine (client process only; the
server is another process, which callgrind does not follow): run ``--calls NAME:N`` (NAME
``bare``, ``run``, ``run-keyed`` (each create with an ``Idempotency-Key``, as bulk sends
it), ``bulk``, or ``engine`` (bulk over a stub client that answers after one turn of the
loop: the job engine alone): N creates at concurrency 64, nothing else) under callgrind for
two values of N and divide the difference in instructions by the difference in N:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python benchmarks/bench_bulk.py --calls bulk:6000

Every server runs in its own process, so its CPU and memory are not the client's.

1. Throughput at concurrency 64, no rate limit: ``client.bulk("create_contact", ...)``
   next to a bare aiohttp loop doing the same creates (one pooled session, 64 tasks,
   msgspec, no limiter, retry or bookkeeping). Against a minimal local HTTP server with a
   canned reply the client is the bottleneck, which is what the ratio should measure
   (target >= 0.85x); against FakeSippet (one Python process) the server is, for reference.
   Many short rounds, each running the three loops back to back (order alternating); the
   ratio is the median of the rounds' own ratios, so a busy moment on this shared machine
   spoils one pair rather than the figure.
2. FakeSippet limiting to 200 requests per rolling second (429 above): bulk with
   ``SippetClient(rate_limit=200)``; achieved rate / 200 (target >= 0.97) and 429s (0).
3. Peak RSS of a bulk job (journal on) over a generator of 100k and 1M items against the
   minimal server, each in a fresh interpreter: flat in the item count, under 150 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from types import SimpleNamespace
from typing import Any

import aiohttp
import msgspec
from _servers import server_process  # benchmarks/ is on sys.path when run

from sippet_async import SippetClient
from sippet_async._jobs._bulk import bulk

KEY = "sk_test_bench_bulk_0123456789"
CONCURRENCY = 64
RATE = 200
_FAKE = """
import asyncio, gc, sys
from sippet_async.testing import Faults, run_forever
rate = int(sys.argv[2])
faults = Faults(rate_limit=rate) if rate else None
def ready(server):
    gc.freeze()  # the startup heap out of the collector (docs/design.md, register)
    print(server.url, flush=True)
asyncio.run(run_forever(port=0, api_key=sys.argv[1], faults=faults, handle_signals=True,
                        on_ready=ready), debug=False)
"""


# -- the minimal server: HTTP/1.1 keep-alive, a canned create reply, nothing else ----------

class _Fast(asyncio.Protocol):
    """Answers every POST with ``{"success":true,"data":{"id":...}}``; parses just enough."""

    ids = itertools.count()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].lower()
            start = head.find(b"content-length:")
            length = int(head[start + 15:head.find(b"\r\n", start)]) if start >= 0 else 0
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            self.buffer = self.buffer[end:]
            n = next(self.ids)
            body = b'{"success":true,"data":{"id":"00000000-0000-4000-8000-%012d"}}' % n
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )


async def _serve_fast() -> None:
    server = await asyncio.get_running_loop().create_server(_Fast, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


def fast_server() -> contextlib.AbstractContextManager[str]:
    """The minimal server in a subprocess; yields its URL."""
    return server_process([__file__, "--serve-fast"])


def fake_server(rate: int = 0) -> contextlib.AbstractContextManager[str]:
    """FakeSippet in a subprocess (with a rolling-window limit when ``rate``)."""
    return server_process(["-c", _FAKE, KEY, str(rate)])


def peak_rss_kib() -> int:
    """This process's peak RSS (VmHWM; ``ru_maxrss`` is inherited across exec on Linux)."""
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# -- the two clients ------------------------------------------------------------------------

def contacts(n: int, offset: int = 0) -> Iterator[dict[str, Any]]:
    """``n`` distinct create_contact inputs, generated lazily."""
    return ({"fullName": f"Person {i}", "phoneE164": f"+1{i:010d}"}
            for i in range(offset, offset + n))


async def bare_aiohttp(url: str, n: int, offset: int) -> float:
    """The same creates with nothing but aiohttp + msgspec: creates per second."""
    encode = msgspec.json.Encoder().encode
    decode = msgspec.json.Decoder().decode
    headers = {"x-api-key": KEY, "content-type": "application/json"}
    target = url + "/rpc/public/run"
    items = contacts(n, offset)
    ok = 0
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal ok
            for item in items:
                body = encode({"action": "create_contact", "input": item, "fields": ["id"]})
                async with session.post(target, data=body, headers=headers) as response:
                    reply = decode(await response.read())
                ok += reply["success"] is True

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - start
    assert ok == n, f"bare loop: {ok} of {n} succeeded"
    return n / elapsed


async def run_loop(url: str, n: int, offset: int, keyed: bool = False) -> float:
    """The creates through ``client.run`` from 64 tasks, without bulk: creates per second.

    ``keyed``: each with an ``Idempotency-Key``, as bulk sends a write (the request
    engine's share of what bulk costs over the plain loop).
    """
    async with SippetClient(KEY, base_url=url, max_concurrency=CONCURRENCY) as client:
        items = contacts(n, offset)

        async def worker() -> None:
            for item in items:
                await client.run("create_contact", input=item, fields=["id"])

        async def keyed_worker() -> None:
            for item in items:
                await client.run("create_contact", input=item, fields=["id"],
                                 idempotency_key=item["phoneE164"])

        start = time.perf_counter()
        await asyncio.gather(*((keyed_worker if keyed else worker)()
                               for _ in range(CONCURRENCY)))
        return n / (time.perf_counter() - start)


async def with_bulk(url: str, n: int, offset: int, **options: Any) -> tuple[float, Any]:
    """The creates through ``client.bulk``: (creates per second, the client's counters)."""
    async with SippetClient(KEY, base_url=url, max_concurrency=CONCURRENCY,
                            **options) as client:
        ok = 0
        start = time.perf_counter()
        async with client.bulk("create_contact", contacts(n, offset), fields=["id"],
                               concurrency=CONCURRENCY) as job:
            async for outcome in job:
                ok += outcome.ok
        elapsed = time.perf_counter() - start
        assert ok == n, f"bulk: {ok} of {n} succeeded ({job.report.summary()})"
        return n / elapsed, client.counters


@dataclass(frozen=True)
class Rounds:
    """Creates per second of each round, per loop; round ``i`` of each ran back to back."""

    bare: list[float]
    run: list[float]
    bulk: list[float]

    def paired(self, ours: list[float]) -> list[float]:
        """``ours`` / bare, round by round: a busy moment on the machine spoils one pair,
        not the figure (the median of the pairs)."""
        return [a / b for a, b in zip(ours, self.bare, strict=True)]


async def compare(url: str, n: int, rounds: int) -> Rounds:
    """``rounds`` rounds of (bare, run loop, bulk), order alternating, after a warm-up."""
    warm = min(n // 2, 500)
    await bare_aiohttp(url, warm, 10**9)
    await run_loop(url, warm, 2 * 10**9)
    await with_bulk(url, warm, 3 * 10**9)
    result = Rounds([], [], [])
    for r in range(rounds):
        steps = [
            (result.bare, partial(bare_aiohttp, url, n, (3 * r + 4) * 10**8)),
            (result.run, partial(run_loop, url, n, (3 * r + 5) * 10**8)),
            (result.bulk, partial(_bulk_rate, url, n, (3 * r + 6) * 10**8)),
        ]
        for cells, step in steps if r % 2 == 0 else steps[::-1]:
            cells.append(await step())
    return result


async def _bulk_rate(url: str, n: int, offset: int) -> float:
    rate, _ = await with_bulk(url, n, offset)
    return rate


def _quartiles(values: list[float]) -> str:
    ordered = sorted(values)
    return f"{ordered[len(ordered) // 4]:.2f}-{ordered[(3 * len(ordered)) // 4]:.2f}"


class _Stub:
    """A client whose ``run`` answers after one turn of the loop: the bulk engine alone."""

    counters = SimpleNamespace(retries={}, breaker="closed")  # what a job reads of them
    created = itertools.count()

    async def run(self, action: str, **keys: Any) -> Any:
        await asyncio.sleep(0)
        return {"id": f"00000000-0000-4000-8000-{next(self.created):012d}"}

    async def wait_reachable(self, patience: float) -> bool:
        return True


async def bulk_engine(url: str, n: int, offset: int) -> None:
    """``bulk`` over ``_Stub`` (``url`` unused): the job engine's own work per item."""
    ok = 0
    job = bulk(_Stub(), "create_contact", contacts(n, offset),  # type: ignore[arg-type]
               fields=["id"], concurrency=CONCURRENCY)
    async with job:
        async for outcome in job:
            ok += outcome.ok
    assert ok == n, f"engine: {ok} of {n} succeeded"


# The clients ``--calls`` runs: one pass of N creates each, no warm-up (setup cancels out in
# the difference of two runs). ``engine``: the bulk job over a stub client, no HTTP.
CALLS = {"bare": bare_aiohttp, "run": run_loop, "run-keyed": partial(run_loop, keyed=True),
         "bulk": with_bulk, "engine": bulk_engine}


# -- peak RSS, one fresh interpreter per size ------------------------------------------------

async def _rss_child(url: str, size: int) -> dict[str, Any]:
    baseline = peak_rss_kib()
    ok = 0
    with tempfile.TemporaryDirectory() as folder:
        async with SippetClient(KEY, base_url=url, max_concurrency=CONCURRENCY) as client:
            start = time.perf_counter()
            async with client.bulk("create_contact", contacts(size), fields=["id"],
                                   concurrency=CONCURRENCY,
                                   journal=os.path.join(folder, "journal")) as job:
                async for outcome in job:
                    ok += outcome.ok
            elapsed = time.perf_counter() - start
    return {"ok": ok, "baseline_kib": baseline, "peak_kib": peak_rss_kib(),
            "rate": size / elapsed}


def rss(url: str, size: int) -> dict[str, Any]:
    """Peak RSS of one bulk job over ``size`` generated items, in a fresh interpreter."""
    out = subprocess.run([sys.executable, __file__, "--rss-child", url, str(size)],
                         capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# -- main -------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    """Print the three figures side by side; returns 0."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--creates", type=int, default=3000, help="per throughput round")
    parser.add_argument("--rounds", type=int, default=11,
                        help="paired throughput rounds (many short ones: a busy moment spoils few)")
    parser.add_argument("--rate-creates", type=int, default=3000, help="for the 200/s test")
    parser.add_argument("--rss-sizes", default="100000,1000000", help="comma-separated")
    parser.add_argument("--uvloop", action="store_true",
                        help="run the clients of section 1 on uvloop (the optional extra)")
    parser.add_argument("--only", default="throughput,rate,rss",
                        help="sections to run, comma-separated (default: all three)")
    parser.add_argument("--tiny", action="store_true", help="a fast smoke run")
    parser.add_argument("--calls", metavar="NAME:N",
                        help=f"only make N creates with one client ({', '.join(CALLS)}) at "
                             f"concurrency {CONCURRENCY} and exit (for callgrind)")
    parser.add_argument("--serve-fast", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rss-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_fast:
        try:  # the server must outrun the client for the ratio to measure the client
            import uvloop

            runner: Any = uvloop.run
        except ImportError:
            runner = asyncio.run
        with contextlib.suppress(KeyboardInterrupt):
            runner(_serve_fast())
        return 0
    if args.calls:
        name, _, count = args.calls.rpartition(":")
        if name not in CALLS:
            parser.error(f"--calls: NAME is one of {', '.join(CALLS)}, got {name!r}")
        with fast_server() as url:
            _run(CALLS[name](url, int(count), 0))
        return 0
    if args.rss_child:
        print(json.dumps(_run(_rss_child(args.rss_child[0], int(args.rss_child[1])))))
        return 0
    if args.tiny:
        args.creates, args.rounds, args.rate_creates, args.rss_sizes = 200, 2, 40, "300,1000"

    sections = set(args.only.split(","))
    if "throughput" in sections:
        throughput(args)
    if "rate" in sections:
        rate(args)
    if "rss" in sections:
        memory(args)
    return 0


def throughput(args: argparse.Namespace) -> None:
    """Section 1: bulk vs the bare loop, against both servers."""
    loop = "uvloop" if args.uvloop else "asyncio"
    print(f"1. create_contact at concurrency {CONCURRENCY}, no rate limit "
          f"({args.rounds} paired rounds of {args.creates:,} creates, client on {loop};"
          f" rates are medians, ratios the median of the rounds' ratios):")
    for label, server in (("minimal local server (client-bound)", fast_server),
                          ("FakeSippet (server-bound)", fake_server)):
        with server() as url:
            rounds = _loop(args)(compare(url, args.creates, args.rounds))
        run_ratios, bulk_ratios = rounds.paired(rounds.run), rounds.paired(rounds.bulk)
        over_run = statistics.median([b / r for b, r in zip(rounds.bulk, rounds.run,
                                                            strict=True)])
        ratio = statistics.median(bulk_ratios)
        verdict = "met" if ratio >= 0.85 else "MISSED"
        print(f"  {label}:\n"
              f"    bare aiohttp loop   {statistics.median(rounds.bare):>9,.0f} creates/s\n"
              f"    client.run x64 loop {statistics.median(rounds.run):>9,.0f} creates/s  "
              f"{statistics.median(run_ratios):.2f}x bare (the request engine alone)\n"
              f"    client.bulk         {statistics.median(rounds.bulk):>9,.0f} creates/s  "
              f"{ratio:.2f}x bare (quartiles {_quartiles(bulk_ratios)}), "
              f"{over_run:.2f}x the run loop"
              + (f"  (target >= 0.85x bare: {verdict})" if "minimal" in label else ""))
        if "minimal" in label:
            print("    bulk / bare per round: " + " ".join(f"{r:.2f}" for r in bulk_ratios))


def _loop(args: argparse.Namespace) -> Any:
    if args.uvloop:
        import uvloop

        return uvloop.run
    return _run


def _run(coro: Any) -> Any:
    """asyncio.run without debug mode, even under PYTHONDEVMODE: figures of production speed."""
    return asyncio.run(coro, debug=False)


def rate(args: argparse.Namespace) -> None:
    """Section 2: the share of a server-side limit used, and 429s."""
    print(f"2. FakeSippet admits {RATE} per rolling second (429 above); "
          f"SippetClient(rate_limit={RATE}), {args.rate_creates:,} creates:")
    with fake_server(RATE) as url:
        achieved, counters = _run(with_bulk(url, args.rate_creates, 0, rate_limit=RATE))
    use = achieved / RATE
    print(f"  achieved {achieved:,.1f}/s = {use:.3f} of {RATE} "
          f"(target >= 0.97: {'met' if use >= 0.97 else 'MISSED'}); "
          f"429s: {counters.rate_limited} (target 0: "
          f"{'met' if counters.rate_limited == 0 else 'MISSED'})")



def memory(args: argparse.Namespace) -> None:
    """Section 3: peak RSS per input size, one fresh process each."""
    print("3. peak RSS of client.bulk (journal on) over generated items, minimal server, "
          "one process per size:")
    peaks = []
    with fast_server() as url:
        for size in (int(s) for s in args.rss_sizes.split(",")):
            row = rss(url, size)
            peaks.append(row["peak_kib"])
            print(f"  {size:>10,} items: peak {row['peak_kib'] / 1024:6.1f} MiB "
                  f"(after imports {row['baseline_kib'] / 1024:5.1f} MiB), "
                  f"{row['rate']:,.0f} items/s, all succeeded: "
                  f"{'yes' if row['ok'] == size else 'NO'}")
    growth = (peaks[-1] - peaks[0]) / 1024
    worst = max(peaks) / 1024
    print(f"  growth from the smallest to the largest size: {growth:+.1f} MiB; "
          f"under 150 MB: {'met' if worst * 1.048576 < 150 else 'MISSED'}")


if __name__ == "__main__":
    raise SystemExit(main())
