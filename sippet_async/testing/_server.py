"""FakeSippet: the aiohttp app around the actions — auth, recording, scripts, faults, replays.

Order of handling for each request (any path):

1. record it, take the next scripted :class:`Reply` (if any) and, on the two RPC paths,
   one fault draw — all before the first await, so arrival order decides;
2. read the body, wait ``latency`` (+ ``faults.latency`` when the faults cover the action);
3. a scripted reply answers now (after running the request normally if ``execute``);
4. other paths answer 404/405; a missing or wrong ``x-api-key`` answers 401;
5. faults: the rolling-window rate limit, then the drawn fault (500/503/429/reset);
6. the idempotency-key replay (if honoured), else the action runs (synchronously);
7. ``lost_after_commit`` aborts the connection, else HTTP 200 with the envelope.
"""

from __future__ import annotations

import asyncio
import hmac
import random
import ssl as _ssl
from collections import deque
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Final

import msgspec
from aiohttp import web
from multidict import CIMultiDict

from . import _error_objects as E
from ._actions import Endpoint, handle
from ._faults import (
    HTML_500,
    HTML_503,
    TEXT_429,
    Faults,
    RollingWindow,
    rate_limit_headers,
    seconds,
)
from ._records import RecordedRequest, Reply, _Entry
from ._rules import Record, project
from ._schema import CALL, CONTACT
from ._store import Store

RUN_PATH: Final = "/rpc/public/run"
VALIDATE_PATH: Final = "/rpc/public/validate"
DEFAULT_API_KEY: Final = "sk_test_sippet_fake"
_ENDPOINTS: Final[dict[str, Endpoint]] = {RUN_PATH: "run", VALIDATE_PATH: "validate"}
_CLIENT_MAX_SIZE: Final = 16 * 1024 * 1024  # request bodies; aiohttp answers 413 above
_SHUTDOWN_TIMEOUT: Final = 0.5  # seconds stop() lets in-flight requests finish
_STREAM_PREFIX: Final = b'{"success":true,"data":"'
_JUNK: Final = memoryview(b"x" * 65536)


class FakeSippet:
    """A Sippet-compatible RPC server on 127.0.0.1, for tests and demos.

    Example:
        >>> async with FakeSippet("sk_test_1", seed_contacts=3) as server:
        ...     ...  # point a client at server.url; inspect server.requests
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed_contacts: int = 0,
        max_page_size: int = 500,
        latency: float = 0.0,
        honour_idempotency_key: bool = False,
        faults: Faults | None = None,
        seed: int = 0,
        clock: Callable[[], float] | None = None,
        ssl: _ssl.SSLContext | None = None,
        keepalive_timeout: float = 75.0,
    ) -> None:
        """Configure the server; nothing listens until :meth:`start`.

        Args:
            seed_contacts: how many deterministic contacts to create.
            max_page_size: ``page.limit`` above this is silently clamped (§5.1).
            latency: seconds added to every request; settable at runtime.
            honour_idempotency_key: replay the first result for a repeated
                ``Idempotency-Key`` on ``/run`` (§12.4); by default the header is ignored.
            faults: the fault script; settable at runtime.
            seed: seeds record ids and the fault draws.
            clock: monotonic seconds for the rate-limit window (default ``loop.time``).
            ssl: a server-side ``ssl.SSLContext``: serve HTTPS (``url`` is then https://).
            keepalive_timeout: seconds an idle keep-alive connection stays open before the
                server closes it (aiohttp's default, 75 s, as nginx's).
        """
        if max_page_size < 1 or seed_contacts < 0 or latency < 0 or keepalive_timeout <= 0:
            raise ValueError("max_page_size must be >= 1; seed_contacts, latency >= 0; "
                             "keepalive_timeout > 0")
        self.api_key = api_key
        self.latency = latency
        self.faults = faults
        self.honour_idempotency_key = honour_idempotency_key
        self.max_page_size = max_page_size
        self._host, self._port = host, port
        self._ssl = ssl
        self._keepalive_timeout = keepalive_timeout
        self._store = Store(seed=seed, seed_contacts=seed_contacts)
        self._rng = random.Random(seed)
        self._clock = clock
        self._window = RollingWindow()
        self._replies: deque[Reply] = deque()
        self._log: list[_Entry] = []
        self._idempotent: dict[str, bytes] = {}
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    # --- lifecycle ---

    async def start(self) -> FakeSippet:
        """Listen (on a free port when ``port=0``) and return self."""
        if self._runner is not None:
            raise RuntimeError("FakeSippet is already running")
        app = web.Application(client_max_size=_CLIENT_MAX_SIZE)
        app.router.add_route("*", "/{path:.*}", self._handle)
        runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT,
            keepalive_timeout=self._keepalive_timeout,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port, ssl_context=self._ssl).start()
        except BaseException:
            await runner.cleanup()
            raise
        host, port = runner.addresses[0][:2]
        scheme = "https" if self._ssl is not None else "http"
        self._url = f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"
        self._runner = runner
        return self

    async def stop(self) -> None:
        """Stop listening, close every connection and end every handler; idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        # Handlers whose client hung up are no longer aiohttp's to wait for (e.g. one still
        # sleeping its latency): end them too, so nothing outlives the server.
        orphans = [task for task in self._handlers if not task.done()]
        for task in orphans:
            task.cancel()
        await asyncio.gather(*orphans, return_exceptions=True)

    async def __aenter__(self) -> FakeSippet:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- inspection and scripting ---

    @property
    def url(self) -> str:
        """Base URL like ``http://127.0.0.1:8123``; kept after stop (for refused connections)."""
        if self._url is None:
            raise RuntimeError("FakeSippet has not been started")
        return self._url

    @property
    def open_connections(self) -> int:
        """Client connections open right now (0 when stopped); idle keep-alives included."""
        runner = self._runner
        server = runner.server if runner is not None else None
        return len(server.connections) if server is not None else 0

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in arrival order (a snapshot)."""
        return [entry.freeze() for entry in self._log]

    @property
    def contacts(self) -> list[Record]:
        """Copies of the current contacts, wire keys, in insertion order."""
        return [project(r, r.keys()) for r in self._store.table(CONTACT).values()]

    @property
    def calls(self) -> list[Record]:
        """Copies of the current calls, wire keys, in insertion order."""
        return [project(r, r.keys()) for r in self._store.table(CALL).values()]

    @property
    def pending_replies(self) -> int:
        """How many pushed replies are still waiting for a request."""
        return len(self._replies)

    def push_reply(self, reply: Reply) -> None:
        """Queue a scripted reply for the next request, FIFO, ahead of normal handling."""
        self._replies.append(reply)

    def reset_records(self) -> None:
        """Forget the recorded requests (data, scripts and faults stay)."""
        self._log.clear()

    # --- request handling ---

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - aiohttp always runs handlers in a task
            return await self._respond(request)
        self._handlers.add(task)
        try:
            return await self._respond(request)
        finally:
            self._handlers.discard(task)

    async def _respond(self, request: web.Request) -> web.StreamResponse:
        headers = {name.lower(): value for name, value in request.headers.items()}
        entry = _Entry(
            path=request.path, method=request.method, headers=headers, received_at=self._now()
        )
        self._log.append(entry)
        reply = self._replies.popleft() if self._replies else None
        endpoint = _ENDPOINTS.get(request.path) if request.method == "POST" else None
        draw = self._rng.random() if endpoint is not None else 1.0
        try:
            entry.body = await request.read()
        except web.HTTPException as exc:  # 413: body above client_max_size
            entry.status = exc.status
            raise
        entry.json = _decode(entry.body)
        if isinstance(entry.json, dict) and isinstance(entry.json.get("action"), str):
            entry.action = entry.json["action"]
        faults = self.faults
        if endpoint is None or faults is None or not faults.applies_to(entry.action):
            faults = None
        entry.latency = self.latency + (faults.latency if faults is not None else 0.0)
        if entry.latency > 0:
            await asyncio.sleep(entry.latency)
        if reply is not None:
            return await self._scripted(request, entry, endpoint, reply)
        if endpoint is None:
            return _not_rpc(entry)
        if not self._authorized(request):
            key = request.headers.get("x-api-key")
            message = "Missing API key" if not key else "Invalid API key"
            return _json(
                entry, 401, {"success": False, "errors": [E.authentication_failed(message)]}
            )
        if faults is not None:
            early = self._fault_before(request, entry, faults, draw)
            if early is not None:
                return early
        body = self._execute(request, entry, endpoint)
        if faults is not None and faults._pick(draw) == "lost_after_commit":
            entry.fault = "lost_after_commit"
            return _abort(request)
        entry.status = 200
        return web.Response(body=body, content_type="application/json")

    def _authorized(self, request: web.Request) -> bool:
        given = request.headers.get("x-api-key", "")
        return hmac.compare_digest(given.encode(), self.api_key.encode())

    def _fault_before(
        self, request: web.Request, entry: _Entry, faults: Faults, draw: float
    ) -> web.StreamResponse | None:
        """Faults that answer before executing; None lets the request through."""
        if faults.rate_limit is not None:
            wait = self._window.admit(self._now(), faults.rate_limit)
            if wait is not None:
                entry.fault = "rate_limited"
                extra = rate_limit_headers(wait, faults.rate_limit)
                return _status(entry, 429, TEXT_429, "text/plain", wait, faults, extra)
        kind = faults._pick(draw)
        if kind is not None and kind != "lost_after_commit":
            entry.fault = kind
        if kind == "http_500":
            return _status(entry, 500, HTML_500, "text/html")
        if kind == "http_503":
            return _status(entry, 503, HTML_503, "text/html", faults.retry_after)
        if kind == "http_429":
            extra = rate_limit_headers(faults.retry_after, faults.rate_limit)
            return _status(entry, 429, TEXT_429, "text/plain", faults.retry_after, faults, extra)
        if kind == "reset_before":
            return _abort(request)
        return None

    def _execute(self, request: web.Request, entry: _Entry, endpoint: Endpoint) -> bytes:
        """Run the action (or replay it) and return the envelope bytes; no awaits inside."""
        key = entry.headers.get("idempotency-key")
        if not self.honour_idempotency_key or endpoint != "run":
            key = None
        if key is not None and key in self._idempotent:
            entry.replayed = True
            return self._idempotent[key]
        params = entry.json if isinstance(entry.json, dict) and _is_json(request) else None
        outcome = handle(self._store, endpoint, params, max_page_size=self.max_page_size)
        entry.executed = outcome.executed
        body = msgspec.json.encode(outcome.body)
        if key is not None:
            self._idempotent[key] = body
        return body

    async def _scripted(
        self, request: web.Request, entry: _Entry, endpoint: Endpoint | None, reply: Reply
    ) -> web.StreamResponse:
        entry.fault = "scripted"
        if reply.execute and endpoint is not None and self._authorized(request):
            self._execute(request, entry, endpoint)
        if reply.reset:
            return _abort(request)
        headers = CIMultiDict(reply.headers)
        if "Content-Type" not in headers:
            html = reply.body.lstrip().startswith(b"<")
            headers["Content-Type"] = "text/html; charset=utf-8" if html else "application/json"
        entry.status = reply.status
        if reply.stream_bytes is None:
            return web.Response(status=reply.status, body=reply.body, headers=headers)
        headers.popall("Content-Length", None)
        return await _stream(request, reply, reply.stream_bytes, headers)


def _decode(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError, ValueError):
        return None


def _is_json(request: web.Request) -> bool:
    """Phoenix parses only JSON media types; anything else yields no params (§2)."""
    kind = request.content_type
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def _json(entry: _Entry, status: int, payload: object) -> web.Response:
    entry.status = status
    return web.Response(
        status=status, body=msgspec.json.encode(payload), content_type="application/json"
    )


def _not_rpc(entry: _Entry) -> web.Response:
    """What aiohttp's router would answer: 405 on the RPC paths, else 404."""
    if entry.path in _ENDPOINTS:
        entry.status = 405
        return web.Response(status=405, text="405: Method Not Allowed", headers={"Allow": "POST"})
    entry.status = 404
    return web.Response(status=404, text="404: Not Found")


def _status(
    entry: _Entry,
    status: int,
    body: bytes,
    content_type: str,
    retry_after: float | None = None,
    faults: Faults | None = None,
    extra: Mapping[str, str] | None = None,
) -> web.Response:
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["Retry-After"] = seconds(retry_after)
    if faults is not None and faults.rate_limit_headers and extra:
        headers.update(extra)
    entry.status = status
    return web.Response(status=status, body=body, content_type=content_type, headers=headers)


def _abort(request: web.Request) -> web.StreamResponse:
    """Drop the connection with no reply; aiohttp then quietly skips writing the response."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response()


async def _stream(
    request: web.Request, reply: Reply, total: int, headers: CIMultiDict[str]
) -> web.StreamResponse:
    """Send ``total`` bytes chunked, in 64 KiB slices of one shared buffer."""
    response = web.StreamResponse(status=reply.status, headers=headers)
    response.enable_chunked_encoding()
    head = (reply.body or _STREAM_PREFIX)[:total]
    try:
        await response.prepare(request)
        await response.write(head)
        left = total - len(head)
        while left > 0:
            size = min(left, len(_JUNK))
            await response.write(_JUNK[:size])
            left -= size
        await response.write_eof()
    except ConnectionError:
        pass  # the client hung up mid-stream, as a size cap does
    return response
