"""The transport seam: ``send(request) -> response`` and ``aclose()``, plus the aiohttp adapter.

This is the only module that imports aiohttp. Its exceptions are translated here, once,
through one table, into TransportError / TransportTimeoutError / ResponseTooLargeError.
"""

from __future__ import annotations

import asyncio
from typing import Final, Protocol, runtime_checkable

import aiohttp

from sippet_async import __version__
from sippet_async._config import Timeouts
from sippet_async._errors import (
    ResponseTooLargeError,
    TransportError,
    TransportTimeoutError,
)
from sippet_async._protocol import HttpRequest, HttpResponse

__all__ = ["AiohttpTransport", "Transport"]

USER_AGENT: Final = f"sippet_async/{__version__}"
_CHUNK: Final = 64 * 1024


@runtime_checkable
class Transport(Protocol):
    """Sends one HTTP POST and returns the whole reply; raises only sippet_async errors."""

    async def send(self, request: HttpRequest) -> HttpResponse: ...

    async def aclose(self) -> None: ...


# Foreign exception -> (our class, whether the request may have reached the server).
# Order matters: the first matching row wins, so subclasses come before their bases.
_TABLE: Final[tuple[tuple[type[BaseException], type[TransportError], bool, str], ...]] = (
    (aiohttp.ConnectionTimeoutError, TransportTimeoutError, False, "connect timed out"),
    (aiohttp.SocketTimeoutError, TransportTimeoutError, True, "read timed out"),
    (aiohttp.ClientConnectorDNSError, TransportError, False, "DNS lookup failed"),
    (aiohttp.ClientConnectorError, TransportError, False, "connection failed"),
    (aiohttp.ServerDisconnectedError, TransportError, True, "server disconnected"),
    (aiohttp.ClientPayloadError, TransportError, True, "reply truncated"),
    (aiohttp.ClientOSError, TransportError, True, "connection error"),
    (aiohttp.ServerTimeoutError, TransportTimeoutError, True, "timed out"),
    (asyncio.TimeoutError, TransportTimeoutError, True, "attempt timed out"),
    (aiohttp.ClientError, TransportError, True, "HTTP client error"),
)


def translate(exc: BaseException, request: HttpRequest) -> TransportError:
    """Map an aiohttp/asyncio failure to our error; the key never enters the message."""
    for foreign, ours, sent, what in _TABLE:
        if isinstance(exc, foreign):
            detail = f": {type(exc).__name__}" if str(exc) == "" else f": {exc}"
            return ours(f"{what} ({request.url}){detail}", sent=sent)
    raise TypeError(f"no translation for {type(exc).__name__}")  # pragma: no cover


class AiohttpTransport:
    """One pooled ``aiohttp.ClientSession``, created inside the running loop on first use.

    An injected ``session`` is borrowed: used as is and never closed.
    """

    def __init__(
        self,
        *,
        timeouts: Timeouts,
        max_concurrency: int,
        max_response_bytes: int,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(
            total=timeouts.total, connect=timeouts.connect, sock_read=timeouts.read
        )
        self._limit = max_concurrency
        self._max_bytes = max_response_bytes
        self._session = session
        self._owned = session is None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=self._limit)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                trust_env=False,  # proxies from the environment must not see the key
                headers={"user-agent": USER_AGENT},
                skip_auto_headers=("content-type",),
            )
        return self._session

    async def send(self, request: HttpRequest) -> HttpResponse:
        session = self._open()
        try:
            async with session.post(
                request.url,
                data=request.body,
                headers=request.headers,
                allow_redirects=False,
                timeout=self._timeout,
            ) as resp:
                body = await self._read(resp, request)
                return HttpResponse(status=resp.status, headers=resp.headers, body=body)
        except aiohttp.ClientError as exc:
            raise translate(exc, request) from exc
        except TimeoutError as exc:
            raise translate(exc, request) from exc

    async def _read(self, resp: aiohttp.ClientResponse, request: HttpRequest) -> bytes:
        """Read the body, refusing more than ``max_response_bytes`` without buffering it."""
        limit = self._max_bytes
        if resp.content_length is not None and resp.content_length > limit:
            resp.close()
            raise ResponseTooLargeError(
                f"reply of {resp.content_length} bytes exceeds the {limit}-byte cap "
                f"({request.url}); raise max_response_bytes if this is expected",
                status=resp.status,
            )
        if resp.content_length is not None:
            # Declared and within the cap: aiohttp stops at Content-Length, so one read
            # is bounded (and cheaper than the chunk loop on every small reply).
            return await resp.read()
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > limit:
                resp.close()
                raise ResponseTooLargeError(
                    f"reply exceeds the {limit}-byte cap ({request.url}); "
                    "raise max_response_bytes if this is expected",
                    status=resp.status,
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and self._owned:
            await session.close()
