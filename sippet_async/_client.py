"""SippetClient: lifecycle, run / validate, and the one pipeline every request goes through."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import ssl as _ssl
import time
from collections.abc import (
    AsyncIterable,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar, Unpack, overload

from sippet_async import _protocol as protocol
from sippet_async._breaker import Admission, Breaker, State, is_unanswered
from sippet_async._config import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_RETRY_AFTER_CAP,
    ApiKey,
    BreakerPolicy,
    ClientConfig,
    RetryPolicy,
    Timeouts,
    check_seconds,
    check_token,
)
from sippet_async._errors import (
    ClientClosedError,
    OutcomeUnknownError,
    ServerUnreachableError,
    SippetError,
    TransportError,
    UsageError,
)
from sippet_async._hooks import Counters, Hooks, Observer, engine_hooks
from sippet_async._iterator import RecordIterator, iterate
from sippet_async._jobs import _bulk
from sippet_async._limiter import RateLimiter
from sippet_async._limits import Limits
from sippet_async._models import RunResult, ValidationResult
from sippet_async._retry import (
    Attempt,
    Call,
    Retry,
    RetryBudget,
    RetryRules,
    cause_of,
    probe_backoff,
)
from sippet_async._runner import ON_BEHALF_OF_A_JOB, RequestKeys
from sippet_async._transport import AiohttpTransport, Transport
from sippet_async._typed_methods import Client, TypedResources
from sippet_async._walk import ResumeToken

if TYPE_CHECKING:
    import aiohttp

__all__ = ["SippetClient"]

T = TypeVar("T")

log: Final = logging.getLogger("sippet_async")
# A library logs; the application decides where it goes. Without a handler here, Python's
# last-resort handler would print every retry warning of a bulk job to stderr.
log.addHandler(logging.NullHandler())



class SippetClient(TypedResources):
    """An asyncio client for Sippet's RPC API, with one pooled HTTP session.

    ``client.contacts`` and ``client.calls`` hold typed methods per action (records and
    inputs are msgspec Structs); ``run`` and ``iter`` reach any action by name.

    Example:
        async with SippetClient(api_key="sk_live_...") as client:
            data = await client.run("list_contacts", fields=["id", "fullName"],
                                    page={"limit": 20})
            ada = await client.contacts.create(
                CreateContact(full_name="Ada", phone_e164="+15555550123"))
    """

    def __init__(
        self,
        api_key: str | ApiKey | None = None,
        *,
        base_url: str | None = None,
        timeout: float | Timeouts | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        session: aiohttp.ClientSession | None = None,
        transport: Transport | None = None,
        rate_limit: float | RateLimiter | None = None,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, shared safely
        idempotent_actions: Collection[str] = frozenset(),
        honours_idempotency_key: bool = False,
        retry_after_cap: float = DEFAULT_RETRY_AFTER_CAP,
        deadline: float | None = None,
        hooks: Hooks | Observer | None = None,
        ssl: _ssl.SSLContext | None = None,
        proxy: str | None = None,
        proxy_auth: tuple[str, str] | None = None,
        trust_env: bool = False,
        breaker: BreakerPolicy | None = BreakerPolicy(),  # noqa: B008 - frozen, shared safely
    ) -> None:
        """Create a client; nothing is opened until the first request.

        Args:
            api_key: the secret key; defaults to ``$SIPPET_SECRET_KEY``.
            base_url: defaults to ``$SIPPET_BASE_URL``, then ``https://api.sippet.ai``.
            timeout: seconds per attempt, or a ``Timeouts`` (connect / read / total).
            max_concurrency: requests in flight at once (also the connection pool size).
            max_response_bytes: larger replies (decoded size) are refused without being read
                whole; default 8 MiB, several times the largest page.
            session: an ``aiohttp.ClientSession`` to borrow (never closed by the client);
                it brings its own TLS and proxy settings, so the four network options
                below cannot be combined with it.
            transport: a custom ``Transport`` (not with ``session`` or network options).
            rate_limit: requests per second; no rolling second ever carries more (retries
                included). Or a ``RateLimiter`` of your own (closed with the client).
                None: no client-side rate limit (429s still pause the client).
            retry: attempts, backoff and retry budget; ``RetryPolicy(attempts=1)`` disables
                retries.
            idempotent_actions: writes that are safe to send twice (re-sent after any
                transient failure, like reads).
            honours_idempotency_key: the server replays the first result for a repeated
                ``Idempotency-Key``, so a write sent with ``idempotency_key=`` may be re-sent.
            retry_after_cap: a ``Retry-After`` above this many seconds raises
                ``RateLimitError`` instead of waiting.
            deadline: seconds each call may take in all, attempts and waits included.
            hooks: an ``Observer`` (events on each request, retry, response, pause and
                breaker change), or an object with the three ``Hooks`` methods.
            ssl: an ``ssl.SSLContext`` for https connections: a private CA, a client
                certificate. Default: the system's trusted CAs, hostname checked.
            proxy: an ``http://`` or ``https://`` proxy URL for every request (credentials
                in it move to ``proxy_auth`` and are never shown).
            proxy_auth: ``(login, password)`` for the proxy (Basic).
            trust_env: read proxies from ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY``,
                ``.netrc`` credentials, and build the default TLS context when the client
                opens (``SSL_CERT_FILE``). Off by default: the key goes nowhere the code
                does not say. See the "Networks: TLS and proxies" guide.
            breaker: when attempts get no answer (refused, reset, timed out), send one probe
                at a time until the server answers, and fail other attempts fast without
                sending them (``ServerUnreachableError``); None sends every attempt.

        Raises:
            UsageError: a missing key, a malformed base URL, a bad limit, or network
                options combined with ``session=`` / ``transport=``.
        """
        self._config = cfg = ClientConfig.resolve(
            api_key, base_url, timeout, max_concurrency, max_response_bytes,
            ssl=ssl, proxy=proxy, proxy_auth=proxy_auth, trust_env=trust_env,
            rate_limit=rate_limit, retry=retry, idempotent_actions=idempotent_actions,
            honours_idempotency_key=honours_idempotency_key, retry_after_cap=retry_after_cap,
            deadline=deadline, breaker=breaker,
        )
        # Every request carries these; the transport may hold them in its session.
        self._headers: Final = {
            protocol.API_KEY_HEADER: cfg.api_key.reveal(),
            "content-type": "application/json",
            "accept": "application/json",
        }
        _check_borrowed(cfg, session, transport)
        auth = cfg.proxy_auth
        self._transport: Transport = transport or AiohttpTransport(
            timeouts=cfg.timeouts,
            max_concurrency=cfg.max_concurrency,
            max_response_bytes=cfg.max_response_bytes,
            session=session,
            ssl=cfg.ssl,
            proxy=cfg.proxy,
            proxy_auth=(auth.login, auth.reveal()) if auth is not None else None,
            trust_env=cfg.trust_env,
        )
        self._run_url: Final = cfg.base_url + protocol.RUN_PATH
        self._validate_url: Final = cfg.base_url + protocol.VALIDATE_PATH
        self._rules: Final = RetryRules.of(cfg)
        self._budget: Final = RetryBudget(cfg.retry.budget, cfg.retry.budget_refill)
        self._sleep: Final = cfg.retry.sleep or asyncio.sleep
        taps = engine_hooks(hooks)  # either style, as the positional calls the engine makes
        self._hooks: Final = taps.calls
        self._watch: Final = taps.watch
        self._counters: Final = Counters()
        self._limits: Final = Limits(
            max_concurrency=cfg.max_concurrency, rate_limit=cfg.rate_limit,
            retry_after_cap=cfg.retry_after_cap, sleep=self._sleep, counters=self._counters,
            on_pause=taps.on_pause,
        )
        probe = cfg.breaker
        backoff = probe_backoff(probe.probe_wait, probe.growth, probe.max_probe_wait,
                                probe.jitter) if probe is not None else _no_backoff
        self._on_breaker: Final[Callable[[str, float], None] | None] = taps.on_breaker
        self._breaker: Final = Breaker(probe, backoff, on_change=self._breaker_changed)
        self._closed = False

    @property
    def config(self) -> ClientConfig:
        """The resolved, validated configuration, the retry and breaker policies included
        (the key inside is masked)."""
        return self._config

    @property
    def closed(self) -> bool:
        """True once ``aclose()`` has run."""
        return self._closed

    @property
    def counters(self) -> Counters:
        """Live counts of requests, retries by cause, 429s, pauses, budget refusals,
        unknown outcomes and the breaker's state."""
        return self._counters

    async def wait_reachable(self, patience: float) -> bool:
        """Wait until a request may go out: at once while the server answers; during an
        outage, until the breaker lets the next probe through (or a probe got an answer).

        Returns False, without waiting further, once the server has been unreachable for
        ``patience`` seconds (counted from when the breaker opened, not from this call).
        With ``breaker=None`` it always returns True at once.

        Example:
            if not await client.wait_reachable(patience=60.0):
                raise SystemExit("Sippet has been unreachable for a minute")
        """
        return await self._breaker.wait_ready(patience)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<SippetClient {self._config.base_url} key={self._config.api_key.masked} {state}>"

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled session (a borrowed one is left open) and the rate limiter.
        Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._transport.aclose()
        finally:
            await self._limits.aclose()

    # -- public calls -----------------------------------------------------------------

    @overload
    async def run(
        self, action: str, *, type: type[T], idempotent: bool | None = None,
        idempotency_key: str | None = None, deadline: float | None = None,
        **keys: Unpack[RequestKeys],
    ) -> T: ...
    @overload
    async def run(
        self, action: str, *, type: None = None, idempotent: bool | None = None,
        idempotency_key: str | None = None, deadline: float | None = None,
        **keys: Unpack[RequestKeys],
    ) -> Any: ...

    async def run(
        self, action: str, *, type: type[T] | None = None, idempotent: bool | None = None,
        idempotency_key: str | None = None, deadline: float | None = None,
        **keys: Unpack[RequestKeys],
    ) -> T | Any:
        """Run ``action`` and return the envelope's ``data``.

        Keys are those of docs/protocol.md §3 in snake_case: ``input``, ``identity``,
        ``fields``, ``filter``, ``sort``, ``page``, ``metadata_fields``, ``get_by``,
        ``tenant``. Only the keys given are sent; ``input`` may also be an input Struct
        (``CreateContact``, ...). With ``type``, ``data`` is decoded straight into it (a
        msgspec Struct, ``list[Contact]``, ...); data that does not fit it raises
        ``ResultTypeError``.

        Args:
            idempotent: whether this call may be sent twice; None decides by the action
                (reads and the client's ``idempotent_actions`` may, other writes may not).
            idempotency_key: sent as the ``Idempotency-Key`` header; with
                ``honours_idempotency_key`` the write may then be re-sent (§12.4).
            deadline: seconds for the whole call, retries and waits included; None uses
                the client's.

        Example:
            contact = await client.run("create_contact",
                                       input={"fullName": "Ada", "phoneE164": "+15555550123"},
                                       fields=["id"])

        Raises:
            RpcError: the server answered ``success: false`` (a subclass by error type).
            OutcomeUnknownError: a write failed after it may have executed; not re-sent.
            RateLimitError: still rate limited after the retries, or asked to wait longer
                than ``retry_after_cap``.
        """
        result = await self._run_call(action, type, idempotent, idempotency_key, deadline, keys)
        return result.data

    @overload
    async def run_with_metadata(
        self, action: str, *, type: type[T], idempotent: bool | None = None,
        idempotency_key: str | None = None, deadline: float | None = None,
        **keys: Unpack[RequestKeys],
    ) -> RunResult[T]: ...
    @overload
    async def run_with_metadata(
        self, action: str, *, type: None = None, idempotent: bool | None = None,
        idempotency_key: str | None = None, deadline: float | None = None,
        **keys: Unpack[RequestKeys],
    ) -> RunResult[Any]: ...

    async def run_with_metadata(
        self, action: str, *, type: type[T] | None = None, idempotent: bool | None = None,
        idempotency_key: str | None = None, deadline: float | None = None,
        **keys: Unpack[RequestKeys],
    ) -> RunResult[T]:
        """Like ``run`` but returns ``RunResult(data, metadata)``: mutations may put
        metadata beside ``data`` (docs/protocol.md §3.6)."""
        return await self._run_call(action, type, idempotent, idempotency_key, deadline, keys)

    async def validate(
        self, action: str, *, deadline: float | None = None, **keys: Unpack[RequestKeys]
    ) -> ValidationResult:
        """Check a payload with ``/validate`` without running it; invalid input does not raise.

        Nothing executes, so a validation is retried like a read. ``deadline`` bounds the
        whole call (None: the client's).

        Example:
            check = await client.validate("create_contact", input={"fullName": "Ada"})
            if not check.ok:
                print(check.errors[0].render())
        """
        call = Call(self._validate_url, protocol.encode_payload(action, keys), self._headers,
                    protocol.NO_HEADERS, action=action, decode=_decode_validate,
                    resend_safe=True,  # /validate executes nothing
                    deadline=self._deadline(deadline))
        result: ValidationResult = await self._execute(call)
        return result

    @overload
    def iter(
        self, action: str, *, fields: Sequence[str | Mapping[str, Any]], type: type[T],
        filter: Mapping[str, Any] | None = None, sort: str | Sequence[str] | None = None,
        page_size: int | None = 100, limit: int | None = None,
        input: Mapping[str, Any] | None = None, concurrency: int = 1,
        resume: ResumeToken | str | None = None,
    ) -> RecordIterator[T]: ...
    @overload
    def iter(
        self, action: str, *, fields: Sequence[str | Mapping[str, Any]], type: None = None,
        filter: Mapping[str, Any] | None = None, sort: str | Sequence[str] | None = None,
        page_size: int | None = 100, limit: int | None = None,
        input: Mapping[str, Any] | None = None, concurrency: int = 1,
        resume: ResumeToken | str | None = None,
    ) -> RecordIterator[dict[str, Any]]: ...

    def iter(
        self, action: str, *, fields: Sequence[str | Mapping[str, Any]],
        type: type[T] | None = None,
        filter: Mapping[str, Any] | None = None, sort: str | Sequence[str] | None = None,
        page_size: int | None = 100, limit: int | None = None,
        input: Mapping[str, Any] | None = None, concurrency: int = 1,
        resume: ResumeToken | str | None = None,
    ) -> RecordIterator[Any]:
        """Iterate every record of a list action, following offset pages, keyset pages or
        a plain array, whichever each reply is (docs/protocol.md §5).

        Returns a ``RecordIterator``: ``async for`` yields records, ``.pages()`` yields
        ``Page`` objects, ``.resume_token`` is where the walk stands. The next page is
        fetched while one is consumed; ``break``, ``aclose()`` or ``async with`` cancel it.

        Args:
            page_size: records per request; a server that clamps it is followed. None
                sends no ``limit`` (the server's default).
            limit: stop after this many records, without fetching pages not needed.
            type: decode records straight into this type (e.g. ``Contact``); else dicts.
            concurrency: offset pages fetched at once (the first request then sends
                ``offset: 0``). Keyset cursors are sequential, so keyset replies fall back
                to one page of prefetch. Offset windows may skip or repeat records that
                are inserted or deleted during the walk; keyset walks never do.
            resume: a ``resume_token`` (or its string) from an earlier walk of the same
                listing: continue right after the last record it handed out.

        Example:
            async for contact in client.iter("list_contacts", fields=["id", "fullName"],
                                             type=Contact):
                print(contact.full_name)
        """
        return iterate(
            self, action, fields=fields, filter=filter, sort=sort, page_size=page_size,
            limit=limit, input=input, type=type, concurrency=concurrency, resume=resume,
        )

    def bulk(
        self,
        action: str,
        items: Iterable[T] | AsyncIterable[T],
        *,
        fields: Sequence[str | Mapping[str, Any]] | None = None,
        request: Callable[[T], Mapping[str, Any]] | None = None,
        key: Callable[[T], str] | None = None,
        concurrency: int | None = None,
        ordered: bool = False,
        window: int | None = None,
        journal: str | os.PathLike[str] | None = None,
        reconcile: _bulk.Reconcile[T] | None = None,
        idempotent: bool | None = None,
        report_unsent: bool = True,
        redrive: bool = True,
        redrive_wait: float = _bulk.DEFAULT_REDRIVE_WAIT,
    ) -> _bulk.BulkJob[T]:
        """Run ``action`` once per item; iterate the job for exactly one ``Outcome`` per item.

        Items are pulled lazily (a list, any iterable or async iterable; memory stays flat).
        See the "Bulk jobs & workers" guide and ``_bulk``.

        Args:
            fields: sent with every request (include ``"id"`` to journal record ids).
            request: builds the request keys for an item; default ``{"input": item}``.
            key: a stable key per item for the journal (default: a hash of the item).
            concurrency: items in flight at once; default the client's ``max_concurrency``.
            ordered: yield in input order, holding at most ``window`` outcomes.
            journal: a JSONL file; re-running with it skips what is done and resolves what
                was in flight when an earlier run stopped.
            reconcile: ``async (item) -> record | None``; decides whether a write whose
                outcome is unknown happened. Only when it did not is the item re-sent.
            idempotent: passed to ``run``; True also lets in-doubt items be re-sent.
            report_unsent: when the job stops on an error no retry can fix (or
                ``abort()``), read the rest of the input and yield each item ``not_sent``;
                False leaves it unread (for an endless source such as a queue).
            redrive: give items whose retries ran out (429, 5xx, connection failures that
                provably did not execute) one more pass near the end of the job.
            redrive_wait: while the server is unreachable, the redrive waits for it to
                answer again, until it has been unreachable this many seconds; then its
                items are ``failed`` with ``ServerUnreachableError``.

        Example:
            async with client.bulk("create_contact", rows, fields=["id"],
                                   journal="import.journal") as job:
                async for outcome in job:
                    print(outcome.index, outcome.status, outcome.error)
        """
        return _bulk.bulk(
            self, action, items, fields=fields, request=request, key=key,
            concurrency=concurrency, ordered=ordered, window=window, journal=journal,
            report_unsent=report_unsent,
            reconcile=reconcile, idempotent=idempotent, redrive=redrive,
            redrive_wait=redrive_wait,
        )

    # -- the pipeline -----------------------------------------------------------------

    def _run_call(
        self, action: str, type: type[T] | None, idempotent: bool | None,
        idempotency_key: str | None, deadline: float | None, keys: Mapping[str, Any],
    ) -> Awaitable[RunResult[T]]:
        """A ``/run`` call of ``run`` / ``run_with_metadata``, checked before any I/O;
        synchronous, so it adds no coroutine layer."""
        body = protocol.encode_payload(action, keys)
        if type is not None:
            _check_type(type)
        call = Call(
            self._run_url, body, self._headers,
            protocol.NO_HEADERS if idempotency_key is None else _key_header(idempotency_key),
            action=action, decode=protocol.decode_run, type=type,
            resend_safe=self._rules.resend_safe(action, idempotent, idempotency_key),
            deadline=self._deadline(deadline),
        )
        return self._execute(call)

    def _deadline(self, deadline: float | None) -> float | None:
        return self._config.deadline if deadline is None else check_seconds("deadline",
                                                                            deadline)

    def _execute(self, call: Call) -> Awaitable[Any]:
        """The coroutine of one call: the retry loop, inside the call's deadline if any.

        Synchronous: a call without a deadline is the loop's coroutine alone (the
        per-request cost is measured in benchmarks/bench_overhead.py)."""
        self._check_open()
        if self._watch is not None:
            return self._watched(call, _Progress())
        if call.deadline is None:
            return self._call(call, _Progress())
        return self._within(call, _Progress())

    async def _watched(self, call: Call, state: _Progress) -> Any:
        """The call between its observer's ``on_call_start`` and ``on_call_end``."""
        watch = self._watch
        assert watch is not None
        watch.call_start(call.action, call.url)
        started = time.perf_counter()
        try:
            if call.deadline is None:
                result = await self._call(call, state)
            else:
                result = await self._within(call, state)
        except BaseException as exc:
            watch.call_end(call.action, state.attempt, exc, time.perf_counter() - started)
            raise
        watch.call_end(call.action, state.attempt, None, time.perf_counter() - started)
        return result

    async def _call(self, call: Call, state: _Progress) -> Any:
        """attempt → on a failure, decide → sleep → attempt: the one retry loop.

        An attempt takes the breaker's leave while it is not closed, a concurrency slot,
        the pause gate and a rate token, sends, lets the reply teach the limits, then
        decodes (so a 503 / 429 reply is a failed attempt). The attempt is inline, so a
        call that succeeds at once runs in this one coroutine, with no retry machinery.
        """
        limits = self._limits
        slots = limits.slots
        breaker = self._breaker
        while True:
            try:
                if not breaker.clear:  # trouble: wait for the scout, fail fast, or be the test
                    await self._admit(call, state)
                # A slot from the gate check to the reply: at most max_concurrency in flight,
                # and none queued for a connection past a pause that has begun since.
                if not slots.take():
                    await self._queue(call, state)
                try:
                    await limits.admit(call.action)  # the shared pause, then a rate token
                    self._sent(call, state)
                    response = await self._transport.send(call)
                finally:
                    slots.release()
                if not breaker.clear:
                    breaker.answered(state.probe)  # any status: something answered
                    state.probe = 0
                self._received(call, state, response.status)
                limits.observe(call.action, state.attempt, response)  # Retry-After, hints
                result = call.decode(call.action, response, call.type)
            except SippetError as exc:
                if state.in_flight or state.probe:
                    self._report_failure(state, exc)
                    state.in_flight = False
                retry = self._decide(call, state, exc)  # or raise what the call ends with
                await self._sleep(retry.wait)
                state.attempt += 1
                continue
            except BaseException:  # cancelled (a deadline, the caller): the test gives way
                if state.probe:
                    breaker.dropped(state.probe)
                    state.probe = 0
                raise
            self._budget.refill()  # a definite reply: the server is answering
            return result

    async def _within(self, call: Call, state: _Progress) -> Any:
        """The loop inside the call's deadline; past it the call ends with a timeout, or
        an unknown outcome for a write that may have executed."""
        assert call.deadline is not None
        state.deadline_at = asyncio.get_running_loop().time() + call.deadline
        scope = asyncio.timeout_at(state.deadline_at)
        try:
            async with scope:
                return await self._call(call, state)
        except TimeoutError as exc:
            if not scope.expired():
                raise  # one attempt's own timeout, already typed
            end = self._rules.deadline_passed(call, exc, sent=state.in_flight or state.ambiguous,
                                              attempts=state.attempt)
            if isinstance(end, OutcomeUnknownError):
                self._counters.unknown_outcomes += 1
            raise end from end.__cause__

    def _decide(self, call: Call, state: _Progress, error: SippetError) -> Retry:
        """Ask ``decide`` about a failed attempt, with the clock and the budget as data;
        take the token, count and report what it concluded."""
        budget = self._budget
        remaining = None if state.deadline_at is None \
            else state.deadline_at - asyncio.get_running_loop().time()
        attempt = Attempt(state.attempt, state.ambiguous, remaining, budget.tokens)
        try:
            retry = self._rules.decide(call, error, attempt)
        except SippetError as end:
            self._ended(call, error, end, attempt)
            raise
        budget.withdraw()
        state.ambiguous = state.ambiguous or retry.ambiguous
        state.cause = retry.cause  # counted once the retry is sent (see _sent)
        log.info("%s: attempt %d failed (%s); retrying in %.3fs", call.action, attempt.number,
                 retry.cause, retry.wait)
        if self._hooks is not None:
            self._hooks.on_retry(call.action, attempt.number, retry.cause, retry.wait)
        return retry

    def _ended(self, call: Call, error: SippetError, end: SippetError, attempt: Attempt) -> None:
        """Count and log how a call ended after ``decide`` refused another attempt."""
        counters = self._counters
        if isinstance(end, OutcomeUnknownError):
            counters.unknown_outcomes += 1
            # Inside a bulk job the job has the item's last word (see _jobs._logs).
            level = logging.INFO if ON_BEHALF_OF_A_JOB.get() else logging.WARNING
            log.log(level, "%s: outcome unknown after attempt %d (%s); not re-sent",
                    call.action, attempt.number, cause_of(error))
        elif end is error and cause_of(error) is None:
            self._budget.refill()  # a definite answer: the server is up
        elif end is error and attempt.tokens < 1.0:
            # decide raised the error itself: it was the budget if, with tokens to spare,
            # it would have retried (the budget is the last of its checks).
            try:
                self._rules.decide(call, error, attempt._replace(tokens=math.inf))
            except SippetError:
                return
            counters.budget_refusals += 1
            log.info("%s: retry budget exhausted; not retrying attempt %d", call.action,
                     attempt.number)

    def _sent(self, call: Call, state: _Progress) -> None:
        """The attempt is being handed to the transport."""
        state.in_flight = True
        self._counters.requests += 1
        if state.attempt > 1:  # a retry the breaker or the pause gate held back is not one
            self._counters._count_retry(state.cause)
        hooks = self._hooks
        if hooks is not None:
            state.started = time.perf_counter()
            hooks.on_request(call.action, state.attempt)

    def _received(self, call: Call, state: _Progress, status: int) -> None:
        """A reply arrived (whatever its status)."""
        state.in_flight = False
        hooks = self._hooks
        if hooks is not None:
            hooks.on_response(call.action, state.attempt, status,
                              time.perf_counter() - state.started)

    async def _admit(self, call: Call, state: _Progress) -> None:
        """Through the breaker: go, go as its scout or probe, wait for the scout's verdict,
        or fail fast unsent while it is open."""
        breaker = self._breaker
        while True:
            admission = breaker.admit()
            if admission is Admission.GO:
                return
            if admission is Admission.TEST:
                state.probe = breaker.turn
                if breaker.state is State.PROBING:
                    self._counters.probes += 1
                return
            if admission is Admission.REFUSE:
                break
            await breaker.changed()  # a scout is out: at most its attempt's timeout
        self._counters.short_circuited += 1
        wait = max(0.0, breaker.probe_at - asyncio.get_running_loop().time())
        error = ServerUnreachableError(
            f"{call.action}: not sent: {self._config.base_url} has been unreachable for "
            f"{breaker.unreachable_for():.1f}s; "
            + (f"next probe in {wait:.2f}s" if breaker.state is State.OPEN
               else "a probe is in flight"))
        error.__cause__ = breaker.last_failure
        raise error

    async def _queue(self, call: Call, state: _Progress) -> None:
        """Wait for a concurrency slot. If the breaker left "closed" meanwhile, ask it again
        before going: attempts queued behind a full client must not storm a server that
        stopped answering while they waited."""
        slots = self._limits.slots
        breaker = self._breaker
        while True:
            await slots.wait()
            if breaker.clear or state.probe:
                return
            slots.release()  # no slot is held while waiting for the breaker
            await self._admit(call, state)
            if slots.take():
                return

    def _report_failure(self, state: _Progress, exc: SippetError) -> None:
        """Tell the breaker how a sent attempt (or its scout or probe) failed."""
        breaker = self._breaker
        turn, state.probe = state.probe, 0
        if not state.in_flight:  # the test never left (a pause longer than the cap)
            breaker.dropped(turn)
        elif not isinstance(exc, TransportError):
            breaker.answered(turn)  # raised on a reply, e.g. one too large to read
        elif turn or is_unanswered(exc):  # (a TLS failure of a test: not an answer either)
            breaker.unanswered(exc, turn=turn)

    def _breaker_changed(self, before: State, after: State, wait: float) -> None:
        counters = self._counters
        counters.breaker = after.value
        if after is State.OPEN and before is not State.PROBING:
            counters.breaker_openings += 1
        hook = self._on_breaker
        if hook is not None:
            hook(after.value, wait)

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("this SippetClient is closed; create a new one")


def _check_borrowed(cfg: ClientConfig, session: aiohttp.ClientSession | None,
                    transport: Transport | None) -> None:
    """Network options configure the session the client owns; a borrowed session or a
    custom transport brings its own, so asking for both is a mistake."""
    if session is None and transport is None:
        return
    given = [name for name, value in (("ssl", cfg.ssl), ("proxy", cfg.proxy),
                                      ("proxy_auth", cfg.proxy_auth))
             if value is not None]
    if cfg.trust_env:
        given.append("trust_env")
    if given:
        owner = "session" if session is not None else "transport"
        raise UsageError(f"{', '.join(given)} cannot be combined with {owner}=: configure "
                         f"the {owner} itself")
    if session is not None and transport is not None:
        raise UsageError("pass session= or transport=, not both")


def _no_backoff(probe: int) -> float:
    return 0.0  # breaker=None: the breaker never opens


def _decode_validate(action: str, response: protocol.HttpResponse, _type: Any) -> ValidationResult:
    return protocol.decode_validate(action, response)


def _key_header(key: str) -> Mapping[str, str]:
    """The ``Idempotency-Key`` header of a call (§12.4), checked before any I/O."""
    if not isinstance(key, str) or not key or len(key) > 255:
        raise UsageError("idempotency_key must be a non-empty string of at most 255 "
                         "characters")
    check_token("idempotency_key", key)
    return {protocol.IDEMPOTENCY_HEADER: key}


class _Progress:
    """Where one call stands: the loop's state across its attempts.

    Class-level defaults, no ``__init__``: a call that succeeds at once sets only what its
    one attempt touches (one of these is built per call).
    """

    attempt: int = 1
    in_flight: bool = False  # between _sent and the reply: the request may execute
    ambiguous: bool = False  # an earlier attempt failed after it may have executed
    probe: int = 0  # this attempt is the breaker's scout or probe of this turn (0: not)
    cause: str = "unknown"  # why this attempt is a retry (attempt > 1)
    started: float = 0.0  # perf_counter() at the send, for on_response's elapsed
    deadline_at: float | None = None  # the call's deadline on the loop's clock


def _check_type(type: Any) -> None:
    """Reject a ``type=`` msgspec cannot decode into before any I/O, not after the reply.

    The decoder built here is cached, so decoding the reply reuses it.
    """
    if type is None:
        return
    try:
        protocol._decoder_for(type)
    except TypeError as exc:  # unsupported or unhashable type
        raise UsageError(f"type={type!r} cannot be decoded into: {exc}") from exc


if TYPE_CHECKING:
    def _typed_methods_client(client: SippetClient) -> Client:
        """mypy checks here that the client is what the typed methods call (they cast)."""
        return client
