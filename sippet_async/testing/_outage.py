"""A TCP proxy in front of a server that crashes on demand: an outage for tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from urllib.parse import urlsplit

__all__ = ["Outage"]

_CHUNK = 65536


def _free_port() -> int:
    """A port on 127.0.0.1 nothing listens on now (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Outage:
    """A proxy on 127.0.0.1 in front of ``upstream_url`` that can go down like a crashed
    server: ``down()`` closes its listening socket (new connections are refused) and resets
    every connection at once (requests in flight are lost); ``up()`` listens again on the
    same port, in front of the same server and its records.

    Example:
        outage = Outage(server.url)
        await outage.up()
        ...  # a client against outage.url; outage.down(), later await outage.up()
        await outage.aclose()
    """

    def __init__(self, upstream_url: str, *, port: int | None = None) -> None:
        parts = urlsplit(upstream_url)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"upstream_url needs a host and a port, got {upstream_url!r}")
        self._upstream = (parts.hostname, parts.port)
        self.port = _free_port() if port is None else port
        self.url = f"http://127.0.0.1:{self.port}"
        self._listener: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def up(self) -> None:
        """Listen (again) on ``port``."""
        if self._listener is None:
            self._listener = await asyncio.start_server(self._link, "127.0.0.1", self.port)

    def down(self) -> None:
        """Crash: refuse new connections and reset every open one."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    async def aclose(self) -> None:
        """Go down for good and end every piping task."""
        self.down()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self._upstream)
            except OSError:
                writer.transport.abort()
                return
            pair = {writer, up_writer}
            self._links |= pair
            try:
                await asyncio.gather(_pipe(reader, up_writer, pair),
                                     _pipe(up_reader, writer, pair))
            finally:
                self._links -= pair
                for side in pair:
                    side.transport.abort()
        finally:
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                pair: set[asyncio.StreamWriter]) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    for side in pair:  # one side ended: so does the other
        side.transport.abort()
