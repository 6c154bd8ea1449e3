"""Per-request overhead of ``client.run`` next to bare aiohttp, naive aiohttp and httpx.

Run by hand (figures are printed, nothing is asserted):

    python benchmarks/bench_overhead.py                    # concurrency 1, 16, 64, 256
    python benchmarks/bench_overhead.py --uvloop           # the same on asyncio and uvloop
    python benchmarks/bench_overhead.py --rounds 30 --concurrency 64
    python benchmarks/bench_overhead.py --tiny             # a quick smoke run
    python benchmarks/bench_overhead.py --concurrency 1 --only typed   # typed vs run only

Instruction counts, steadier than time on a shared machine (client process only; the
server is another process): run ``--calls NAME:N`` under callgrind for two values of N
and divide the difference in instructions by the difference in N:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python benchmarks/bench_overhead.py --calls contacts.create:3000

The server is a minimal keep-alive HTTP/1.1 responder (raw asyncio protocol, on uvloop when
installed) in its own process, answering every POST with the same tiny envelope, so the
client's CPU is measured alone (``time.process_time`` of this process per request).

Clients, each driven by ``concurrency`` tasks:

* ``client.run``: SippetClient with its default retry policy (no failures happen, so no
  retry runs), no rate limit, ``max_concurrency`` = concurrency;
* ``bare aiohttp``: one pooled ``ClientSession`` with aiohttp's default timeouts (a total
  of 5 minutes per request), pre-encoded body, ``resp.read()`` and a msgspec envelope
  decode: the floor for an aiohttp client (no limiter, no retry). ``client.run`` bounds
  each attempt too (60 s), with its own coarse timer instead of aiohttp's per-request one;
* ``naive aiohttp``: the same session with ``json=`` and ``await resp.json()``;
* ``httpx``: ``httpx.AsyncClient`` with a pool of ``concurrency`` connections;
* ``run(type=)`` and ``contacts.create``: the same ``create_contact`` call, once through
  ``client.run(..., type=Contact)`` with an input dict, once through the typed method with a
  ``CreateContact`` (each built per call, as a caller would): the typed methods' own cost.

Method: per concurrency level, all four clients are opened on one event loop and warmed
up (every pooled connection open), then measured in ``--rounds`` rounds of one
``--seconds`` window each, in alternating order. A shared 2-core machine drifts by 20-30%
over a minute, far more than the differences measured here; windows of a round are
adjacent in time, so the ratio of a round is taken within the round, and the median round
is reported (and the median of each client's own windows for its columns).

Target (issue 4): ``client.run`` >= 0.90x the bare aiohttp loop, and ahead of the naive one.
Target (issue 14): ``contacts.create`` >= 0.98x ``run(type=)`` (at most 2% overhead).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec
from _servers import server_process  # benchmarks/ is on sys.path when run

from sippet_async import Contact, CreateContact, RetryPolicy, SippetClient

KEY = "sk_test_bench_overhead_0123456789"
PAYLOAD = {"action": "get_contact", "input": {"id": "c1"}, "fields": ["id"]}
REPLY = b'{"success":true,"data":{"id":"c1","fullName":"Ada"}}'
CREATE_FIELDS = ["id", "fullName"]
_SERVER = r"""
import asyncio, sys
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(sys.argv[1])).encode() + b"\r\n\r\n" + sys.argv[1].encode())

class Http(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""

    def data_received(self, data):
        buffer = self.buffer + data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15:head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0
                              else None]) if at >= 0 else 0
            if len(buffer) < end + 4 + length:
                break
            buffer = buffer[end + 4 + length:]
            self.transport.write(RESPONSE)
        self.buffer = buffer

async def main():
    server = await asyncio.get_running_loop().create_server(Http, "127.0.0.1", 0, backlog=1024)
    print(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()

try:
    import uvloop
    uvloop.run(main())
except ImportError:
    asyncio.run(main())
"""

Send = Callable[[], Awaitable[Any]]
Opener = Callable[[str, int], contextlib.AbstractAsyncContextManager[Send]]


@dataclass(frozen=True)
class Cell:
    """One measurement: requests per second and client CPU per request."""

    rps: float
    cpu_us: float
    requests: int


def fast_server() -> contextlib.AbstractContextManager[str]:
    """Start the responder in a subprocess; yield its base URL."""
    return server_process(["-c", _SERVER, REPLY.decode()])


async def warm_up(send: Send, concurrency: int) -> None:
    """Open every pooled connection, so no window pays for connection setup."""
    for _ in range(2):
        await asyncio.gather(*(send() for _ in range(concurrency)))


async def measure(send: Send, concurrency: int, seconds: float) -> Cell:
    """Run ``concurrency`` loops of ``send`` for ``seconds``."""
    done = 0
    stop = False

    async def loop() -> None:
        nonlocal done
        while not stop:
            await send()
            done += 1

    gc.collect()
    cpu0, t0 = time.process_time(), time.perf_counter()
    tasks = [asyncio.create_task(loop()) for _ in range(concurrency)]
    await asyncio.sleep(seconds)
    stop = True
    await asyncio.gather(*tasks)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return Cell(rps=done / elapsed, cpu_us=cpu / max(done, 1) * 1e6, requests=done)


@contextlib.asynccontextmanager
async def open_client(url: str, concurrency: int) -> AsyncIterator[Send]:
    async with SippetClient(KEY, base_url=url, max_concurrency=concurrency,
                            retry=RetryPolicy()) as client:
        async def send() -> Any:
            return await client.run("get_contact", input={"id": "c1"}, fields=["id"])
        yield send


@contextlib.asynccontextmanager
async def open_run_typed(url: str, concurrency: int) -> AsyncIterator[Send]:
    async with SippetClient(KEY, base_url=url, max_concurrency=concurrency,
                            retry=RetryPolicy()) as client:
        async def send() -> Any:
            return await client.run(
                "create_contact", input={"fullName": "Ada", "phoneE164": "+15555550123"},
                fields=CREATE_FIELDS, type=Contact)
        yield send


@contextlib.asynccontextmanager
async def open_typed_method(url: str, concurrency: int) -> AsyncIterator[Send]:
    async with SippetClient(KEY, base_url=url, max_concurrency=concurrency,
                            retry=RetryPolicy()) as client:
        async def send() -> Any:
            return await client.contacts.create(
                CreateContact(full_name="Ada", phone_e164="+15555550123"),
                fields=CREATE_FIELDS)
        yield send


class _Envelope(msgspec.Struct):
    success: bool
    data: msgspec.Raw = msgspec.Raw(b"null")


@contextlib.asynccontextmanager
async def open_bare(url: str, concurrency: int) -> AsyncIterator[Send]:
    decoder = msgspec.json.Decoder(_Envelope)
    data = msgspec.json.Decoder()
    body = msgspec.json.encode(PAYLOAD)
    headers = {"x-api-key": KEY, "content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        target = url + "/rpc/public/run"

        async def send() -> Any:
            async with session.post(target, data=body, headers=headers) as resp:
                raw = await resp.read()
            return data.decode(decoder.decode(raw).data)
        yield send


@contextlib.asynccontextmanager
async def open_naive(url: str, concurrency: int) -> AsyncIterator[Send]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) \
            as session:
        target = url + "/rpc/public/run"

        async def send() -> Any:
            async with session.post(target, json=PAYLOAD, headers={"x-api-key": KEY}) as resp:
                return (await resp.json())["data"]
        yield send


@contextlib.asynccontextmanager
async def open_httpx(url: str, concurrency: int) -> AsyncIterator[Send]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits) as client:
        async def send() -> Any:
            resp = await client.post("/rpc/public/run", json=PAYLOAD, headers={"x-api-key": KEY})
            return resp.json()["data"]
        yield send


CLIENTS: dict[str, Opener] = {
    "client.run": open_client,
    "bare aiohttp": open_bare,
    "naive aiohttp": open_naive,
    "httpx": open_httpx,
    "run(type=)": open_run_typed,
    "contacts.create": open_typed_method,
}
# --only: a subset of the clients, for a longer run of one comparison.
GROUPS: dict[str, tuple[str, ...]] = {
    "all": tuple(CLIENTS),
    "engine": ("client.run", "bare aiohttp", "naive aiohttp", "httpx"),
    "typed": ("run(type=)", "contacts.create"),
}


async def bench_level(url: str, concurrency: int, seconds: float, rounds: int,
                      names: Sequence[str] = tuple(CLIENTS)) -> dict[str, list[Cell]]:
    """Every client's windows at one concurrency level, in alternating order per round."""
    async with contextlib.AsyncExitStack() as stack:
        senders = {name: await stack.enter_async_context(CLIENTS[name](url, concurrency))
                   for name in names}
        for send in senders.values():
            await warm_up(send, concurrency)
        windows: dict[str, list[Cell]] = {name: [] for name in senders}
        order = list(senders)
        for round_ in range(rounds):
            for name in order if round_ % 2 == 0 else order[::-1]:
                windows[name].append(await measure(senders[name], concurrency, seconds))
        return windows


def median(cells: list[Cell]) -> Cell:
    """The window with the median throughput."""
    return sorted(cells, key=lambda cell: cell.rps)[len(cells) // 2]


def paired_ratio(windows: dict[str, list[Cell]], top: str, bottom: str) -> float:
    """The median over rounds of ``top`` / ``bottom`` throughput within the same round."""
    ratios = sorted(a.rps / b.rps for a, b in zip(windows[top], windows[bottom], strict=True))
    return ratios[len(ratios) // 2]


def run_loop(use_uvloop: bool, coro: Awaitable[Any]) -> Any:
    """Run ``coro`` on asyncio's default loop or on uvloop."""
    if use_uvloop:
        import uvloop

        return uvloop.run(coro)  # type: ignore[arg-type]
    return asyncio.run(coro)  # type: ignore[arg-type]


def report(loop_name: str, concurrencies: Sequence[int],
           levels: dict[int, dict[str, list[Cell]]]) -> None:
    print(f"\n{loop_name}: requests/s (client CPU µs/request), median window")
    print(f"{'client':<16}" + "".join(f"{'c=' + str(c):>22}" for c in concurrencies))
    names = list(levels[concurrencies[0]])
    for name in names:
        cells = [median(levels[c][name]) for c in concurrencies]
        print(f"{name:<16}" + "".join(f"{x.rps:>12,.0f} ({x.cpu_us:>5.0f} µs)" for x in cells))
    if "client.run" in names:
        bare = [paired_ratio(levels[c], "client.run", "bare aiohttp") for c in concurrencies]
        naive = [paired_ratio(levels[c], "client.run", "naive aiohttp") for c in concurrencies]
        print(f"{'run / bare':<16}" + "".join(f"{r:>21.2f}x" for r in bare)
              + "   (target >= 0.90x; median of paired rounds)")
        print(f"{'run / naive':<16}" + "".join(f"{r:>21.2f}x" for r in naive)
              + "   (target > 1.00x)")
    if "contacts.create" in names:
        typed = [paired_ratio(levels[c], "contacts.create", "run(type=)")
                 for c in concurrencies]
        extra = [median(levels[c]["contacts.create"]).cpu_us
                 - median(levels[c]["run(type=)"]).cpu_us for c in concurrencies]
        print(f"{'typed / run':<16}" + "".join(f"{r:>8.3f}x ({e:>+6.1f} µs CPU)"
                                               for r, e in zip(typed, extra, strict=True))
              + "   (target >= 0.98x: a typed method costs <= 2% over client.run)")


async def count_calls(url: str, name: str, calls: int) -> None:
    """Send ``calls`` requests one at a time with client ``name`` (for callgrind)."""
    async with CLIENTS[name](url, 1) as send:
        await warm_up(send, 1)
        for _ in range(calls):
            await send()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--concurrency", default="1,16,64,256",
                        help="comma-separated concurrency levels")
    parser.add_argument("--seconds", type=float, default=0.5, help="seconds per window")
    parser.add_argument("--rounds", type=int, default=15,
                        help="rounds of one window per client; medians are reported")
    parser.add_argument("--uvloop", action="store_true",
                        help="also run every level on uvloop (reports both loops)")
    parser.add_argument("--tiny", action="store_true", help="a quick smoke run")
    parser.add_argument("--only", choices=sorted(GROUPS), default="all",
                        help="measure only these clients")
    parser.add_argument("--calls", metavar="NAME:N",
                        help="only send N requests with one client, one at a time, and exit "
                             "(for instruction counts under callgrind)")
    args = parser.parse_args(argv)
    if args.calls:
        name, _, count = args.calls.rpartition(":")
        with fast_server() as url:
            asyncio.run(count_calls(url, name, int(count)))
        return 0
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    seconds, rounds = args.seconds, args.rounds
    if args.tiny:
        concurrencies, seconds, rounds = [1, 4], 0.05, 1
    loops = [False, True] if args.uvloop else [False]
    print(f"bench_overhead: {rounds} rounds x {seconds:g} s window per client and level, "
          f"python {sys.version.split()[0]}, "
          f"aiohttp {aiohttp.__version__}, {os.cpu_count()} CPUs; server in a subprocess")
    with fast_server() as url:
        for use_uvloop in loops:
            levels = {c: run_loop(use_uvloop, bench_level(url, c, seconds, rounds,
                                                          GROUPS[args.only]))
                      for c in concurrencies}
            report("uvloop" if use_uvloop else "asyncio", concurrencies, levels)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
