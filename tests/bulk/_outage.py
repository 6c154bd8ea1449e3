"""A TCP proxy that crashes on demand, in front of a FakeSippet: the outage of the tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on now (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Outage:
    """``down()`` is a crash: the listening socket closes (new connections are refused) and
    every connection is reset (requests in flight are lost); ``up()`` listens again on the
    same port, in front of the same server and its records."""

    def __init__(self, upstream_url: str) -> None:
        host, port = upstream_url.removeprefix("http://").rsplit(":", 1)
        self._upstream = (host, int(port))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._listener: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def up(self) -> None:
        self._listener = await asyncio.start_server(self._link, "127.0.0.1", self.port)

    def down(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    async def aclose(self) -> None:
        self.down()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            self._tasks.discard(task)
            return
        pair = {writer, up_writer}
        self._links |= pair
        try:
            await asyncio.gather(_pipe(reader, up_writer, pair), _pipe(up_reader, writer, pair))
        finally:
            self._links -= pair
            for side in pair:
                side.transport.abort()
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                pair: set[asyncio.StreamWriter]) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    for side in pair:  # one side ended: so does the other
        side.transport.abort()
