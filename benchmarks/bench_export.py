"""Export throughput against a fake server with per-page latency, and peak RSS per size.

Run by hand (figures are printed, nothing is asserted):

    python benchmarks/bench_export.py                       # 100,000 contacts, 20 ms/page
    python benchmarks/bench_export.py --records 20000 --latency 0.05
    python benchmarks/bench_export.py --tiny                # a quick smoke run

The fake server runs in its own process (so its CPU and memory are not the client's).
In one run, over the same records, three ways to read them all are timed, each consuming
pages the same way (one JSON line per record, written to /dev/null):

* sequential: the page-walking rules driven by hand, one ``client.run`` per page, the next
  request only once the previous page is consumed (what a plain loop does);
* prefetch: ``client.iter(...).pages()`` — the next page is fetched while one is consumed;
* concurrency=N: ``client.iter(..., concurrency=N)`` — N offset windows in flight.

Each walk is checked to have yielded every record exactly once. Peak RSS of the
``export_jsonl`` job is measured in a fresh subprocess per size (``ru_maxrss``), so each
figure belongs to one run. Target (issue 3): concurrency=8 >= 5x the sequential walk,
with RSS flat in the record count.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
from _servers import server_process  # benchmarks/ is on sys.path when run

from sippet_async import SippetClient
from sippet_async._cli._export import _lines, export_jsonl
from sippet_async._walk import Walk, page_type

KEY = "sk_test_bench_export_0123456789"
FIELDS = ["id", "fullName", "phoneE164", "email", "company", "tags", "insertedAt", "updatedAt"]
_SERVER = """
import asyncio, sys
from sippet_async.testing import run_forever
records, latency, max_page = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
asyncio.run(run_forever(port=0, api_key=sys.argv[4], seed_contacts=records, latency=latency,
                        max_page_size=max_page, handle_signals=True,
                        on_ready=lambda server: print(server.url, flush=True)))
"""


def peak_rss_kib() -> int:
    """This process's peak RSS. /proc's VmHWM is per process image; ``ru_maxrss`` is not
    (Linux carries it over from the parent across fork + exec), so it is the fallback."""
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def fake_server(records: int, latency: float,
                max_page: int) -> contextlib.AbstractContextManager[str]:
    """A FakeSippet in a subprocess, seeded with ``records`` contacts; yields its URL."""
    return server_process(["-c", _SERVER, str(records), str(latency), str(max_page), KEY])


class Consumer:
    """Writes each page as JSON lines to /dev/null and keeps every record for the check."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.seen: set[bytes] = set()
        self.count = 0

    def __call__(self, records: list[msgspec.Raw]) -> None:
        self.sink.write(_lines(records))
        self.count += len(records)
        self.seen.update(bytes(r) for r in records)

    def exactly_once(self, total: int) -> bool:
        return self.count == total and len(self.seen) == total


async def sequential(client: SippetClient, page_size: int, consume: Consumer) -> None:
    """No prefetch: request, wait, consume, then the next request."""
    walk = Walk(page_size=page_size)
    decode_as = page_type(msgspec.Raw)
    while (request := walk.next_request()) is not None:
        data = await client.run("list_contacts", type=decode_as, fields=FIELDS,
                                page=request.wire())
        consume(walk.receive(request, data).page.results)


def iterated(concurrency: int) -> Callable[[SippetClient, int, Consumer], Awaitable[None]]:
    async def run(client: SippetClient, page_size: int, consume: Consumer) -> None:
        async with client.iter("list_contacts", fields=FIELDS, page_size=page_size,
                               type=msgspec.Raw, concurrency=concurrency) as records:
            async for page in records.pages():
                consume(page.results)
    return run


async def service_ms(url: str, pages: int, page_size: int) -> float:
    """Milliseconds per page of a sequential walk against a server with no added latency:
    the work per page (server + client) that concurrency cannot hide."""
    async with SippetClient(KEY, base_url=url) as client:
        await sequential(client, page_size, Consumer(io.BytesIO()))  # warm up
        start = time.perf_counter()
        await sequential(client, page_size, Consumer(io.BytesIO()))
        return (time.perf_counter() - start) * 1000 / pages


async def throughput(url: str, records: int, page_size: int, concurrency: int
                     ) -> list[tuple[str, float, bool]]:
    """(mode, records/s, exactly once) per mode."""
    modes = [("sequential walk", sequential), ("prefetch (iter)", iterated(1)),
             (f"concurrency={concurrency}", iterated(concurrency))]
    results = []
    with _devnull() as devnull:
        async with SippetClient(KEY, base_url=url) as client:
            # warm up: the connection pool and the server's sorted view of the records
            await client.run("list_contacts", fields=["id"], page={"limit": 1, "offset": 0})
            for name, mode in modes:
                consume = Consumer(devnull)
                start = time.perf_counter()
                await mode(client, page_size, consume)
                elapsed = time.perf_counter() - start
                results.append((name, records / elapsed, consume.exactly_once(records)))
    return results


async def _child(url: str, records: int, page_size: int, concurrency: int) -> dict[str, Any]:
    baseline = peak_rss_kib()
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "contacts.jsonl")
        async with SippetClient(KEY, base_url=url) as client:
            result = await export_jsonl(client, "list_contacts", out, fields=FIELDS,
                                        page_size=page_size, concurrency=concurrency)
        peak = peak_rss_kib()  # before the check below, which holds every id
        ids = _distinct_ids(out)
    return {"records": result.records, "baseline_kib": baseline, "peak_kib": peak,
            "exactly_once": result.records == records and ids == records}


def _devnull() -> Any:
    return open(os.devnull, "wb")


def _distinct_ids(path: str) -> int:
    with open(path, "rb") as lines:
        return len({msgspec.json.decode(line)["id"] for line in lines})


def rss(size: int, latency: float, page_size: int, concurrency: int) -> dict[str, Any]:
    """Peak RSS of one export of ``size`` records, in a fresh interpreter."""
    with fake_server(size, latency, max(page_size, 500)) as url:
        out = subprocess.run(
            [sys.executable, __file__, "--rss-child", url, str(size), str(page_size),
             str(concurrency)],
            capture_output=True, text=True, check=True,
        )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: Sequence[str] | None = None) -> int:
    """Print records/s per mode with ratios, then peak RSS per size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--latency", type=float, default=0.020, help="seconds per request")
    parser.add_argument("--page-size", type=int, default=100, help="iter's default: 100")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rss-sizes", default="10000,100000", help="comma-separated sizes")
    parser.add_argument("--tiny", action="store_true", help="a fast smoke run")
    parser.add_argument("--rss-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        url, size, page_size, concurrency = args.rss_child
        print(json.dumps(asyncio.run(_child(url, int(size), int(page_size), int(concurrency)))))
        return 0
    if args.tiny:
        args.records, args.latency, args.page_size, args.rss_sizes = 600, 0.002, 100, "200,600"

    print(f"{args.records:,} contacts, {args.latency * 1000:g} ms latency per request, "
          f"pages of {args.page_size}, all 8 fields:")
    with fake_server(args.page_size * 20, 0.0, max(args.page_size, 500)) as url:
        work = asyncio.run(service_ms(url, 20, args.page_size))
    print(f"  work per page with no latency (server + client): {work:.2f} ms; the fake "
          f"server is one Python process, so N windows gain at most "
          f"~{(args.latency * 1000 + work) / work:.1f}x")
    with fake_server(args.records, args.latency, max(args.page_size, 500)) as url:
        results = asyncio.run(throughput(url, args.records, args.page_size, args.concurrency))
    base = results[0][1]
    for name, rate, ok in results:
        print(f"  {name:<18} {rate:>10,.0f} records/s  {rate / base:5.2f}x sequential  "
              f"exactly once: {'yes' if ok else 'NO'}")
    ratio = results[-1][1] / base
    print(f"concurrency={args.concurrency} / sequential: {ratio:.2f}x  (target >= 5x: "
          f"{'met' if ratio >= 5 else 'MISSED'})")

    print(f"peak RSS of export_jsonl (concurrency={args.concurrency}), one process per size:")
    for size in (int(s) for s in args.rss_sizes.split(",")):
        row = rss(size, args.latency, args.page_size, args.concurrency)
        print(f"  {size:>8,} records: peak {row['peak_kib'] / 1024:6.1f} MiB "
              f"(after imports {row['baseline_kib'] / 1024:5.1f} MiB)  "
              f"exactly once: {'yes' if row['exactly_once'] else 'NO'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
