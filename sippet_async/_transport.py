"""The transport seam: ``send(request) -> response`` and ``aclose()``, plus the aiohttp adapter.

This is the only module that imports aiohttp. Its exceptions are translated here, once,
through one table, into TransportError / TransportTimeoutError / ResponseTooLargeError.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import ssl
import time
from collections.abc import Awaitable, Mapping
from typing import Any, Final, Protocol, runtime_checkable

import aiohttp

from sippet_async._config import Timeouts
from sippet_async._errors import (
    ResponseTooLargeError,
    TLSVerificationError,
    TransportError,
    TransportTimeoutError,
)
from sippet_async._protocol import HttpRequest, HttpResponse
from sippet_async._version import __version__

__all__ = ["AiohttpTransport", "Transport"]

log: Final = logging.getLogger("sippet_async")

USER_AGENT: Final = f"sippet_async/{__version__}"
_CHUNK: Final = 64 * 1024
_CONTENT_ENCODING: Final = aiohttp.hdrs.CONTENT_ENCODING

# A gap between two sends longer than this may hide a stall of the event loop, during
# which the server may have closed pooled connections unseen (see AiohttpTransport.send).
# asyncio's debug mode calls a callback this slow a stall (slow_callback_duration). The
# check costs a clock read per request; the yield it triggers is paid at most once per
# STALL_GAP of quiet, so never by a client that is busy sending.
STALL_GAP: Final = 0.1

@runtime_checkable
class Transport(Protocol):
    """Sends one HTTP POST and returns the whole reply; raises only sippet_async errors.

    The contract:

    * ``send`` posts ``request.body`` to ``request.url`` with ``request.headers`` and then
      ``request.extra_headers``, follows no redirect, and returns the status, the reply
      headers and the whole body.
    * The reply headers look names up case-insensitively (RFC 9110 §5.1):
      ``response.headers.get("retry-after")`` finds ``Retry-After``. aiohttp's and httpx's
      header types do; a plain ``dict`` does not (wrap it, e.g. in
      ``multidict.CIMultiDict``).
    * A failure is raised as ``TransportError`` (``TransportTimeoutError`` for a timeout),
      with ``sent=False`` only when the request provably left no byte.
    """

    async def send(self, request: HttpRequest) -> HttpResponse: ...

    async def aclose(self) -> None: ...


# Foreign exception -> (our class, whether the request may have reached the server).
# Order matters: the first matching row wins, so subclasses come before their bases.
_TABLE: Final[tuple[tuple[type[BaseException], type[TransportError], bool, str], ...]] = (
    (aiohttp.ConnectionTimeoutError, TransportTimeoutError, False, "connect timed out"),
    (aiohttp.SocketTimeoutError, TransportTimeoutError, True, "read timed out"),
    (aiohttp.ClientConnectorDNSError, TransportError, False, "DNS lookup failed"),
    (aiohttp.ClientConnectorError, TransportError, False, "connection failed"),
    # The proxy answered CONNECT with an error: the tunnel, so the request, never began.
    (aiohttp.ClientHttpProxyError, TransportError, False, "proxy refused the tunnel"),
    (aiohttp.ServerDisconnectedError, TransportError, True, "server disconnected"),
    (aiohttp.ClientPayloadError, TransportError, True, "reply truncated"),
    (aiohttp.ClientOSError, TransportError, True, "connection error"),
    (aiohttp.ServerTimeoutError, TransportTimeoutError, True, "timed out"),
    (asyncio.TimeoutError, TransportTimeoutError, True, "attempt timed out"),
    (aiohttp.ClientError, TransportError, True, "HTTP client error"),
)


# OpenSSL's verify codes for a certificate that does not name the host (hostname, e-mail,
# IP address mismatch): reported as such rather than as an untrusted certificate.
_NAME_MISMATCH: Final = frozenset({62, 63, 64})


def unwritten(exc: BaseException) -> bool:
    """Whether a failed request provably left no byte: aiohttp refused to write it because
    its connection was already closing (docs/protocol.md §12.5).

    aiohttp's writer checks the connection before each write and raises
    ``ClientConnectionResetError`` instead of writing: this is what a pooled keep-alive
    connection gives when the server closed it while the loop was busy. A request of this
    transport is a single write (the headers and the ``bytes`` body, coalesced; no
    compression, no chunking, no ``Expect: 100-continue``), so a refused write means
    nothing left.
    """
    return isinstance(exc, aiohttp.ClientConnectionResetError) or isinstance(
        exc.__cause__, aiohttp.ClientConnectionResetError
    )


def _tls_error(exc: aiohttp.ClientConnectorCertificateError,
               request: HttpRequest) -> TLSVerificationError:
    cert = exc.certificate_error
    code = getattr(cert, "verify_code", None)
    host = exc.host
    if code in _NAME_MISMATCH:
        what = (f"the certificate is not valid for {host}; use the name it was issued for "
                "in base_url")
    else:
        reason = getattr(cert, "verify_message", None) or type(cert).__name__
        what = f"the certificate could not be verified ({reason})"
    return TLSVerificationError(
        f"TLS verification failed ({request.url}): {what}. To trust a private CA, pass "
        "SippetClient(ssl=ssl.create_default_context(cafile=...)); see the 'Networks: TLS "
        "and proxies' guide"
    )


def translate(exc: BaseException, request: HttpRequest) -> TransportError:
    """Map an aiohttp/asyncio failure to our error; the key never enters the message."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return _tls_error(exc, request)
    if unwritten(exc):
        return TransportError(
            f"connection closed before the request was written ({request.url})", sent=False
        )
    for foreign, ours, sent, what in _TABLE:
        if isinstance(exc, foreign):
            detail = f": {type(exc).__name__}" if str(exc) == "" else f": {exc}"
            return ours(f"{what} ({request.url}){detail}", sent=sent)
    raise TypeError(f"no translation for {type(exc).__name__}")  # pragma: no cover


class _Armed:
    """One attempt under an ``AttemptTimer``."""

    __slots__ = ("cancelling", "deadline", "fired", "settled", "task")

    def __init__(self, task: asyncio.Task[Any], deadline: float) -> None:
        self.task = task
        self.deadline = deadline
        self.cancelling = task.cancelling()  # cancel requests already pending at the start
        self.fired = False  # the timer cancelled the task
        self.settled = False  # that cancel request has been taken back (uncancel)


class AttemptTimer:
    """The per-attempt ``total`` timeout of a transport: one coarse timer for all attempts.

    The plain forms cost a timer handle per request: aiohttp's own total timeout also
    enters a timer context around every read, ``asyncio.timeout()`` per attempt adds two
    coroutines. Measured with callgrind (instructions per request of ``client.run``
    against bench_overhead's server; runs of one build spread over ~2k):

    ==================  ===========  ===========
    per-attempt total   c=1          c=256
    ==================  ===========  ===========
    this timer          442k         525k
    aiohttp's total     465k (+5%)   548k (+4%)
    asyncio.timeout()   471k (+6%)   556k (+6%)
    bare aiohttp loop   432k         461k
    ==================  ===========  ===========

    At c=256 ``client.run`` already costs 1.13x the bare loop's instructions (and ran at
    0.91x-0.95x of its requests per second in bench_overhead, four runs of 7 paired
    rounds on a shared 2-core machine): 4-6% more would take it below the 0.90x target.

    Here an attempt only records its deadline; a sweep every ``total / 20`` seconds (at
    most 1 s, and only while attempts are in flight) cancels the tasks past theirs, as
    ``asyncio.timeout`` does. So an attempt times out up to 5% (at most 1 s) after
    ``total``; aiohttp's own timer is as coarse, rounding a total of 5 s or more up to the
    next whole second. Its cancellation rules are tested as a matrix in
    tests/engine/test_attempt_timer.py.
    """

    __slots__ = ("_armed", "_sweeper", "_tick", "total")

    def __init__(self, total: float) -> None:
        self.total = total  # seconds per attempt
        self._tick = min(1.0, max(0.001, total / 20))
        # Oldest first: every attempt has the same total, so deadlines come in order and
        # a sweep stops at the first one still running.
        self._armed: dict[_Armed, None] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    def arm(self) -> _Armed | None:
        """Start the clock for the attempt running in the current task."""
        task = asyncio.current_task()
        if task is None:  # not inside a task: nothing to cancel
            return None
        loop = task.get_loop()
        armed = _Armed(task, loop.time() + self.total)
        self._armed[armed] = None
        if self._sweeper is None:
            self._sweeper = loop.call_later(self._tick, self._sweep, loop)
        return armed

    def timed_out(self, armed: _Armed | None) -> bool:
        """On CancelledError: whether it was this timer's alone (raise a timeout instead)."""
        if armed is None or not armed.fired or armed.settled:
            return False
        armed.settled = True
        return armed.task.uncancel() <= armed.cancelling

    def disarm(self, armed: _Armed | None) -> None:
        """The attempt has ended, however it ended."""
        if armed is not None:
            self._armed.pop(armed, None)
            if armed.fired and not armed.settled:  # fired, but the attempt ended otherwise
                armed.settled = True
                armed.task.uncancel()

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        expired = []
        for armed in self._armed:
            if armed.deadline > now:
                break
            expired.append(armed)
        for armed in expired:
            del self._armed[armed]
            armed.fired = True
            armed.task.cancel()  # delivered where it waits, inside the attempt
        self._sweeper = loop.call_later(self._tick, self._sweep, loop) if self._armed else None


class AiohttpTransport:
    """One pooled ``aiohttp.ClientSession``, created inside the running loop on first use.

    An injected ``session`` is borrowed: used as is and never closed; the network options
    (``ssl``, ``proxy``, ``proxy_auth``, ``trust_env``) then belong to that session.

    An owned session holds the headers every request carries as its defaults: ``headers``
    given here and the first request's ``headers`` (by the ``HttpRequest`` contract the
    same for every request: the client's key and content type). Each request then sends
    only its ``extra_headers`` (cheaper: the design page's register of speed shortcuts).
    A borrowed session is the caller's and holds none of ours, so each request sends all
    of its headers.

    A request refused by a connection that was already closing (see ``unwritten``) is sent
    once more, at once, on a new connection of a second session that never reuses one, so
    it cannot meet another stale pooled connection; that session opens on first need. With
    a borrowed session the failure is only reported as not sent (the retry policy decides).
    """

    def __init__(
        self,
        *,
        timeouts: Timeouts,
        max_concurrency: int,
        max_response_bytes: int,
        session: aiohttp.ClientSession | None = None,
        headers: Mapping[str, str] | None = None,
        ssl: ssl.SSLContext | None = None,
        proxy: str | None = None,
        proxy_auth: tuple[str, str] | None = None,
        trust_env: bool = False,
    ) -> None:
        # total=None: the attempt timer below bounds each attempt, for a fraction of the
        # cost; sock_read=None: no per-chunk timer (see Timeouts).
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeouts.connect, sock_read=timeouts.read
        )
        self._timer = AttemptTimer(timeouts.total)
        self._limit = max_concurrency
        self._max_bytes = max_response_bytes
        self._session = session
        self._fresh: aiohttp.ClientSession | None = None  # new connections only (resends)
        self._owned = session is None
        self._headers = dict(headers or {})
        self._defaults: dict[str, str] | None = None  # an owned session's, from its opening
        self._last_send = -math.inf  # time.monotonic() of the last send that went ahead
        self._ssl = ssl
        self._proxy = proxy
        # The header rather than aiohttp's proxy_auth=, which aiohttp 3.14 deprecates (and
        # its replacement helper is not in 3.13, our floor).
        self._proxy_headers = (
            {"Proxy-Authorization": _basic_credentials(*proxy_auth)}
            if proxy_auth is not None else None
        )
        self._trust_env = trust_env

    def __repr__(self) -> str:  # the default headers carry the key: never shown
        state = "owned" if self._owned else "borrowed"
        return f"<AiohttpTransport {state} session, limit={self._limit}>"

    def _new_session(self, defaults: dict[str, str], *, fresh: bool = False
                     ) -> aiohttp.ClientSession:
        """An owned session; ``fresh``: every request on a new connection, closed after."""
        context: ssl.SSLContext | bool = True  # aiohttp's verified default context
        if self._ssl is not None:
            context = self._ssl
        elif self._trust_env:
            # Built now, so SSL_CERT_FILE / SSL_CERT_DIR are read as they are now.
            context = ssl.create_default_context()
        return aiohttp.ClientSession(
            # One host (the base URL), so no per-host limit: its bookkeeping costs per request.
            connector=aiohttp.TCPConnector(limit=self._limit, ssl=context, force_close=fresh),
            timeout=self._timeout,
            # Off unless asked for: proxies from the environment must not see the key.
            trust_env=self._trust_env,
            proxy=self._proxy,
            headers=defaults,
        )

    def _open(self, request: HttpRequest) -> aiohttp.ClientSession:
        self._defaults = {"user-agent": USER_AGENT, **self._headers, **request.headers}
        session = self._session = self._new_session(self._defaults)
        return session

    async def send(self, request: HttpRequest) -> HttpResponse:
        now = time.monotonic()  # not loop.time(): a stall is real time, whatever the loop
        if now - self._last_send > STALL_GAP:
            await self._see_closed_connections()
            now = time.monotonic()
        self._last_send = now
        session = self._session or self._open(request)
        extra: Mapping[str, str] | None = request.extra_headers or None
        if not self._owned:  # the caller's session holds none of ours
            extra = request.headers if extra is None and not self._headers \
                else {**self._headers, **request.headers, **(extra or {})}
        armed = self._timer.arm()
        try:
            # Awaited rather than ``async with``: the context manager adds a coroutine
            # layer that every wake-up of the request passes through, and four more
            # coroutines per request; ``release()`` below does what its exit does.
            try:
                resp = await session.post(
                    request.url,
                    data=request.body,
                    headers=extra,  # merged over the session's defaults in a Python loop
                    allow_redirects=False,
                    timeout=self._timeout,
                    proxy_headers=self._proxy_headers,
                )
            except aiohttp.ClientOSError as exc:
                if not self._owned or not unwritten(exc):
                    raise
                # Not a byte left: send it again, once, on a new connection (§12.5). A
                # failure there is translated as usual.
                log.info("connection closed before the request was written (%s); sending "
                         "it again on a new connection", request.url)
                resp = await self._resend(request, extra)
            try:
                length = resp.content_length
                if length is not None and length > self._max_bytes:
                    resp.close()
                    raise self._too_large(resp, request, length)
                # A compressed reply's Content-Length counts compressed bytes (aiohttp
                # decompresses as it reads): only the chunk loop bounds what it decodes to.
                if length is None or _CONTENT_ENCODING in resp.headers:
                    body = await self._read_unsized(resp, request)
                else:
                    # Declared and within the cap: aiohttp stops at Content-Length, so one
                    # read is bounded (and cheaper than the chunk loop on every small reply).
                    body = await resp.read()
            finally:
                # Back to the pool when read whole; closed when not (a partial reply).
                resp.release()
            return HttpResponse(resp.status, resp.headers, body)
        except asyncio.CancelledError:
            if self._timer.timed_out(armed):
                raise TransportTimeoutError(
                    f"attempt timed out after {self._timer.total:g}s ({request.url})", sent=True
                ) from None
            raise
        except aiohttp.ClientError as exc:
            raise translate(exc, request) from exc
        except TimeoutError as exc:
            raise translate(exc, request) from exc
        finally:
            self._timer.disarm(armed)

    @staticmethod
    async def _see_closed_connections() -> None:
        """Let the loop read every close that arrived while it was stalled (§12.5).

        A pooled connection can be closed by the server yet still look alive only if the
        loop has not polled its selector since the close arrived: the loop was stalled.
        The poll queues the transport's read callback, which reads the EOF and closes the
        transport; the pool then drops it (aiohttp checks ``is_closing()`` when it takes a
        connection) instead of writing on it. From Python 3.12 aiohttp writes in the same
        step that takes the connection, so without this the bytes leave and the outcome is
        unknown. Two yields: a task that yields in the very step that ended the stall
        resumes before the callbacks of the next poll; the second yield runs after them.
        Every task that sends in the same step after a stall yields too: the caller
        records the send time only after this returns. (This is the ordering of asyncio's
        selector loop, which runs a step's ready callbacks before polling again.)
        """
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    def _resend(self, request: HttpRequest,
                extra: Mapping[str, str] | None) -> Awaitable[aiohttp.ClientResponse]:
        """Post ``request`` on a new connection: the fresh session never pools one."""
        fresh = self._fresh
        if fresh is None:
            fresh = self._fresh = self._new_session(self._defaults or {}, fresh=True)
        return fresh.post(
            request.url, data=request.body, headers=extra, allow_redirects=False,
            timeout=self._timeout, proxy_headers=self._proxy_headers,
        )

    def _too_large(self, resp: aiohttp.ClientResponse, request: HttpRequest,
                   length: int | None = None) -> ResponseTooLargeError:
        size = "reply" if length is None else f"reply of {length} bytes"
        return ResponseTooLargeError(
            f"{size} exceeds the {self._max_bytes}-byte cap ({request.url}); raise "
            "max_response_bytes if this is expected",
            status=resp.status,
        )

    async def _read_unsized(self, resp: aiohttp.ClientResponse, request: HttpRequest) -> bytes:
        """Read a body of undeclared (or compressed) length, refusing more than
        ``max_response_bytes`` without buffering it.

        At most the cap is held: each chunk is counted before it is kept, chunks are kept
        as read (no growing buffer copied on each append) and joined once, at the end.
        """
        limit = self._max_bytes
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > limit:
                resp.close()
                raise self._too_large(resp, request)
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        self._timer.close()
        session, self._session = self._session, None
        fresh, self._fresh = self._fresh, None
        if fresh is not None:
            await fresh.close()
        if session is not None and self._owned:
            await session.close()


def _basic_credentials(login: str, password: str) -> str:
    """A Basic credentials value (RFC 7617), UTF-8 encoded."""
    token = base64.b64encode(f"{login}:{password}".encode()).decode("ascii")
    return f"Basic {token}"
