"""The bulk engine: one outcome per input item, bounded look-ahead, journal and reconcile.

```
items ──next()──▶ N workers ──▶ out-queue ──▶ (reorder window) ──▶ caller
                    │ key, journal lookup: done before? ─▶ skipped
                    │ journal "started" ─▶ client.run ─▶ reconcile ─▶ journal final
                    └ retries ran out ─▶ set aside ─▶ one redrive pass at the end
```

``concurrency`` workers pull items straight from the input, one at a time, so at most that
many are in flight and none waits unstarted; a worker pulls only while the caller keeps up
(unordered) or while the item fits the reorder window (ordered). Memory stays flat in the
input size. Workers call the client's public ``run``; the request engine below has already
retried whatever was safe, so what reaches the bulk engine is final except for two cases
it cannot decide alone:

* ``OutcomeUnknownError`` — a write that may have executed (docs/protocol.md §12.5). With
  ``reconcile`` the worker looks the record up and re-sends only if it is absent; without
  it the item is reported ``unknown`` and never re-sent.
* ``RateLimitError`` / ``ServerError`` / ``TransportError`` — retries exhausted on a failure
  that provably did not execute. The item is set aside and re-driven once near the end;
  while the client's breaker says the server is unreachable, the redrive waits for it to
  answer again (at most ``redrive_wait`` seconds into the outage) before re-sending.

An error that no retry can fix (``is_fatal``: a rejected key, an unknown action, a wrong
URL) stops the job at once, as ``abort()`` does: what is in flight finishes, nothing more
is sent, and every other item is yielded ``not_sent`` with that error.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import math
import os
import time
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, Self, TypeVar

import msgspec

from sippet_async._errors import (
    ClientClosedError,
    OutcomeUnknownError,
    RateLimitError,
    ServerError,
    ServerUnreachableError,
    SippetError,
    TransportError,
    UsageError,
    is_fatal,
)
from sippet_async._jobs._journal import Journal, Previous, key_digest
from sippet_async._protocol import is_read_action

if TYPE_CHECKING:
    from sippet_async._hooks import Counters
    from sippet_async._runner import Runner

__all__ = ["BulkJob", "BulkReport", "Outcome", "Status", "bulk", "default_key"]

T = TypeVar("T")

Status = Literal["succeeded", "failed", "unknown", "skipped", "not_sent"]
Reconcile = Callable[[T], Awaitable[Any]]

# Each unknown outcome costs one lookup and at most one re-send per round. Rounds only end
# early when a lookup finds the record, so a generous bound costs nothing in the common case
# and keeps a job from giving up while an ambiguous failure rate of ~10% persists.
MAX_RECONCILE_ROUNDS: Final = 10
# ``ordered=True`` holds at most this many outcomes per unit of concurrency while waiting
# for a slow item: enough to keep every slot busy past a few retries of one item.
ORDER_WINDOW_FACTOR: Final = 8
# Retryable failures set aside for the redrive pass; past this many they are re-driven at
# once so that an outage on a million-item input does not grow memory.
DEFERRED_CAP: Final = 4096
# How far into an outage the redrive pass keeps waiting for the server to answer again: a
# restart, a deploy or a load-balancer failover is over within a minute; a server still
# unreachable after that is down for longer than a job should sit idle (run it again with
# its journal later). Counted from the breaker's opening, so the items of one outage share
# one wait however many batches of DEFERRED_CAP they fill.
DEFAULT_REDRIVE_WAIT: Final = 60.0

_DONE: Final = object()

log: Final = logging.getLogger("sippet_async")


class Outcome(msgspec.Struct, Generic[T], frozen=True, repr_omit_defaults=True):
    """What happened to one input item.

    ``status`` is ``succeeded``, ``failed`` (a definite error, the write did not happen),
    ``unknown`` (it may have happened; never re-sent without ``reconcile``), ``skipped``
    (a journal says an earlier run succeeded) or ``not_sent`` (the job stopped before
    sending it; ``error`` is the cause, ``job.stopped_by``). ``attempts`` counts sends by
    the bulk engine in this run (the request engine's own retries are inside one attempt).
    """

    index: int
    item: T
    status: Status
    data: Any = None
    error: SippetError | None = None
    attempts: int = 0
    record_id: str | None = None
    reconciled: bool = False
    _key: str | None = None  # set when a journal or key= made one

    @property
    def ok(self) -> bool:
        """True when the item is done: ``succeeded`` or ``skipped``."""
        return self.status in ("succeeded", "skipped")

    @property
    def key(self) -> str:
        """The item's stable key: ``key=(item)`` if given, else a hash of the item."""
        # Computed on demand when no journal needed it: most callers never look.
        return self._key if self._key is not None else default_key(self.item)


class BulkReport:
    """Counts and timing of a bulk job; live while it runs, final once iteration ends.

    ``interrupted`` counts items in flight when the job was interrupted or closed early;
    they are also counted as ``unknown`` (a journal keeps them in doubt for the next run).
    ``not_sent`` counts items the job stopped before sending; ``stopped_by`` is the cause.
    ``retries`` maps a cause to how many extra sends it caused: the request engine's own
    retries while the job ran (``"429"``, ``"500"``, ``"transport"``, ...) plus the job's
    (``"resend_after_reconcile"``, ``"redrive_<cause>"``).
    """

    __slots__ = ("_baseline", "_counters", "_own", "failed", "finished_at", "interrupted",
                 "not_sent", "reconciled", "skipped", "started_at", "stopped_by", "succeeded",
                 "unknown")

    def __init__(self, counters: Counters | None = None) -> None:
        self.succeeded = 0
        self.failed = 0
        self.unknown = 0
        self.skipped = 0
        self.not_sent = 0
        self.stopped_by: SippetError | None = None
        self.interrupted = 0
        self.reconciled = 0
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self._own: dict[str, int] = {}
        self._counters = counters
        self._baseline: dict[str, int] = dict(counters.retries) if counters else {}

    def __repr__(self) -> str:
        return f"<BulkReport {self.summary()}>"

    @property
    def total(self) -> int:
        """Items accounted for: succeeded + failed + unknown + skipped + not_sent."""
        return self.succeeded + self.failed + self.unknown + self.skipped + self.not_sent

    @property
    def retries(self) -> dict[str, int]:
        """Extra sends by cause (a fresh dict)."""
        merged = dict(self._own)
        if self._counters is not None:
            for cause, count in self._counters.retries.items():
                extra = count - self._baseline.get(cause, 0)
                if extra:
                    merged[cause] = merged.get(cause, 0) + extra
        return merged

    @property
    def wall_time(self) -> float:
        """Seconds from the first item to the end (or to now while running)."""
        if self.started_at is None:
            return 0.0
        end = self.finished_at if self.finished_at is not None else time.perf_counter()
        return end - self.started_at

    @property
    def throughput(self) -> float:
        """Items sent and settled per second (``skipped`` and ``not_sent`` ones cost
        nothing, so they are excluded)."""
        wall = self.wall_time
        done = self.succeeded + self.failed + self.unknown
        return done / wall if wall > 0 else 0.0

    def count_retry(self, cause: str) -> None:
        """Record one extra send by the bulk engine itself."""
        self._own[cause] = self._own.get(cause, 0) + 1

    def _start(self) -> None:
        self.started_at = time.perf_counter()
        if self._counters is not None:
            self._baseline = dict(self._counters.retries)

    def _finish(self) -> None:
        if self._counters is not None:  # freeze: later requests of the client are not ours
            self._own = self.retries
            self._counters = None
        self.finished_at = time.perf_counter()

    def summary(self) -> str:
        """One line for logs and the CLI."""
        retries = ", ".join(f"{k}={v}" for k, v in sorted(self.retries.items())) or "none"
        stopped = self.stopped_by
        cause = f"; stopped by {type(stopped).__name__}: {stopped}" if stopped is not None else ""
        return (
            f"{self.total} items: {self.succeeded} succeeded, {self.failed} failed, "
            f"{self.unknown} unknown, {self.skipped} skipped, {self.not_sent} not sent "
            f"({self.reconciled} reconciled, {self.interrupted} interrupted); "
            f"retries: {retries}; {self.wall_time:.2f}s, {self.throughput:.0f}/s{cause}"
        )


def default_key(item: object) -> str:
    """A stable key for an item: a hash of its JSON form with sorted keys.

    Raises:
        UsageError: the item is not JSON-encodable (pass ``key=`` to bulk).
    """
    try:
        encoded = msgspec.json.encode(item, order="sorted")
    except (TypeError, msgspec.EncodeError) as exc:
        raise UsageError(f"cannot derive a key from item {item!r}; pass key=: {exc}") from exc
    return hashlib.blake2b(encoded, digest_size=16).hexdigest()


@dataclass(slots=True)
class _Work(Generic[T]):
    index: int
    item: T
    key: str | None  # computed when a journal or key= needs it
    previous: Previous | None
    attempts: int = 0
    redrive: bool = False
    marked: bool = False  # this run wrote its "started" line
    settled: bool = False  # its outcome is decided (journaled and counted)
    doubt: bool = False  # it may have executed: the next attempt starts with reconcile
    error: SippetError | None = None  # why it was set aside for the redrive pass


@dataclass(frozen=True, slots=True)
class _Crash:
    exc: BaseException


_SKIPPED: Final = object()  # _pull: the item was done in an earlier run and was handed over
_AGAIN: Final = object()  # _pull: not now (the window filled up or the job is stopping)


class BulkJob(Generic[T]):
    """A running bulk job: iterate it for one ``Outcome`` per input item.

    Use it with ``async with`` so that leaving early (``break``, an exception, a cancel)
    stops it at once and leaves nothing running; ``report`` gives counts and timing.
    ``stop()`` drains gracefully; ``interrupt()`` also cancels what is in flight;
    ``abort(cause)`` — and the first error no retry can fix — stops sending and reports
    every item not sent as ``not_sent``.

    Example:
        async with client.bulk("create_contact", rows, fields=["id"]) as outcomes:
            async for outcome in outcomes:
                print(outcome.index, outcome.status)
        print(outcomes.report.summary())
    """

    def __init__(
        self,
        client: Runner,
        action: str,
        items: Iterable[T] | AsyncIterable[T],
        *,
        fields: Sequence[str | Mapping[str, Any]] | None,
        request: Callable[[T], Mapping[str, Any]] | None,
        key: Callable[[T], str] | None,
        concurrency: int,
        ordered: bool,
        window: int,
        journal: str | os.PathLike[str] | None,
        reconcile: Reconcile[T] | None,
        idempotent: bool | None,
        report_unsent: bool,
        redrive: bool,
        redrive_wait: float = DEFAULT_REDRIVE_WAIT,
    ) -> None:
        self._client = client
        self._action = action
        self._items = items
        self._fields = list(fields) if fields is not None else None
        self._request = request
        self._key = key
        self._ordered = ordered
        self._window = window
        self._journal_path = journal
        self._reconcile = reconcile
        self._idempotent = idempotent
        self._redrive_enabled = redrive
        self._report_unsent = report_unsent
        self._redrive_wait = redrive_wait
        # An item left in doubt by an earlier run may simply be sent again when sending
        # twice is harmless (docs/protocol.md §12.5).
        self._resend_in_doubt = idempotent is True or is_read_action(action)

        self._report = BulkReport(client.counters)
        self._template: dict[str, Any] = {}
        self._key_prefix: str | None = None
        self._journal: Journal | None = None
        self._job_id = uuid.uuid4().hex
        self._concurrency = concurrency
        # `concurrency` workers pull items straight from the input, one at a time, so at most
        # that many are in flight and none that was pulled waits unstarted. Unordered, a
        # worker pulls only while fewer than `concurrency` outcomes wait for the caller;
        # ordered, the reorder window bounds what is held. Either way memory stays flat.
        self._out: asyncio.Queue[Any] = asyncio.Queue()
        self._room_waiters = 0  # workers waiting for the caller to take outcomes
        self._changed = asyncio.Event()  # something settled, was yielded, or stop()
        self._source: Iterator[T] | AsyncIterator[T] | None = None
        self._sync: Iterator[T] | None = None  # the same, when it is a plain iterator
        self._pull_lock = asyncio.Lock()  # an async input is pulled by one worker at a time
        self._puller: asyncio.Task[None] | None = None  # the worker awaiting the input
        self._index = 0  # of the next item to pull
        self._exhausted = False
        self._workers: list[asyncio.Task[None]] = []
        self._running = 0  # workers that have not finished
        self._busy: dict[asyncio.Task[None], _Work[T]] = {}  # worker -> item it works on
        self._deferred: dict[int, _Work[T]] = {}
        self._redriving = False
        self._interrupted: list[Outcome[T]] = []  # interrupted after the caller left
        self._next_yield = 0
        self._stopping = False
        self._stop_requested = False
        self._forced = False
        self._closing = False
        self._stopped_by: SippetError | None = None  # abort(): why nothing more is sent
        self._gen: AsyncGenerator[Outcome[T], None] | None = None

    # -- the caller's side ------------------------------------------------------------

    @property
    def report(self) -> BulkReport:
        """Counts, retries and timing; live while running, final after."""
        return self._report

    @property
    def stopped_by(self) -> SippetError | None:
        """The error that stopped the job before it sent every item (see ``abort``)."""
        return self._stopped_by

    @property
    def interrupted(self) -> tuple[Outcome[T], ...]:
        """Items in flight when the job was closed early (not yielded; also in the report)."""
        return tuple(self._interrupted)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Outcome[T]:
        if self._gen is None:
            self._gen = self._iterate()
        return await self._gen.__anext__()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop now: cancel what is in flight (see ``interrupted``), close the journal.

        Nothing is left running afterwards. Safe to call twice.
        """
        if self._gen is None:
            self._gen = _closed()
        await self._gen.aclose()

    def stop(self) -> None:
        """Stop taking input; items already taken finish and are still yielded."""
        self._stop_requested = True
        self._stopping = True
        if self._puller is not None:
            self._puller.cancel()  # it waits inside the input; see _pull
        self._changed.set()

    def abort(self, cause: SippetError) -> None:
        """Send nothing more because of ``cause``; only the first call counts.

        Items in flight finish and are yielded as usual. Every other item is yielded
        ``not_sent`` with ``cause`` as its ``error`` and no journal line, so a later run
        sends it: the rest of the input too (it is read, not sent), unless the job was made
        with ``report_unsent=False``. The job calls this itself on the first error no retry
        can fix (``is_fatal``: a rejected key, an unknown action, a wrong URL).
        """
        if not isinstance(cause, SippetError):
            raise UsageError(f"abort() takes the SippetError that stops the job, got {cause!r}")
        if self._stopped_by is not None or self._closing:  # a job that has ended stays as is
            return
        self._stopped_by = self._report.stopped_by = cause
        log.error("%s: bulk job stopped by %s: %s; what is in flight finishes, nothing more "
                  "is sent", self._action, type(cause).__name__, cause)
        if self._report_unsent:
            self._stopping = True  # no deferring, no redrive; workers read on to report
            self._settle_deferred()
            self._changed.set()
        else:
            self.stop()

    def _settle_deferred(self) -> None:
        """Report the items set aside for the redrive pass as they stand: after stop() or
        abort() there is no redrive, and an ordered job must not wait for them."""
        for index in sorted(self._deferred):
            work = self._deferred.pop(index)
            # set aside in doubt (a lookup failed): it may have executed
            status: Literal["failed", "unknown"] = "unknown" if work.doubt else "failed"
            self._out.put_nowait(self._final(work, status, error=work.error))

    def interrupt(self) -> None:
        """``stop()``, and cancel what is in flight: each such item is yielded as
        ``unknown`` (it may have executed), then iteration ends."""
        self.stop()
        self._forced = True
        for worker, work in list(self._busy.items()):
            if not work.settled:
                worker.cancel()

    # -- the generator ----------------------------------------------------------------

    async def _iterate(self) -> AsyncGenerator[Outcome[T], None]:
        self._report._start()
        try:
            if self._journal_path is not None:
                self._journal = Journal.open(self._journal_path, action=self._action)
                self._job_id = self._journal.job
            items = self._items
            if isinstance(items, AsyncIterable):
                self._source = aiter(items)
            else:
                self._source = self._sync = iter(items)
            self._template = self._request_template()
            self._running = self._concurrency
            self._workers = [
                asyncio.create_task(self._work(), name=f"sippet-bulk-worker-{n}")
                for n in range(self._concurrency)
            ]
            buffer: dict[int, Outcome[T]] = {}
            out = self._out
            while True:
                message = out.get_nowait() if out.qsize() else await out.get()
                if message is _DONE:
                    break
                if isinstance(message, _Crash):
                    raise message.exc
                if not self._ordered:
                    if self._room_waiters:
                        self._changed.set()
                    yield message
                    continue
                buffer[message.index] = message
                while self._next_yield in buffer:
                    outcome = buffer.pop(self._next_yield)
                    self._next_yield += 1
                    self._changed.set()
                    yield outcome
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        self._closing = True
        self._stopping = True
        for task in self._workers:
            task.cancel()
        try:
            if self._workers:
                await asyncio.wait(self._workers)
        finally:
            for work in self._busy.values():  # cancelled before they could say
                if not work.settled:
                    self._interrupted.append(self._interrupted_outcome(work))
            self._busy.clear()
            self._report._finish()
            if self._journal is not None:
                try:
                    await self._journal.aclose()
                except BaseException:  # cancelled again while closing: close without waiting
                    self._journal.close()
                    raise

    # -- the workers ------------------------------------------------------------------

    async def _work(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        try:
            while True:
                work = await self._take()
                if work is None:
                    break
                self._busy[me] = work
                try:
                    if self._forced:  # interrupt() came before this item was started
                        outcome: Outcome[T] | None = self._interrupted_outcome(work)
                    elif self._stopped_by is not None:  # abort() came first: read, not sent
                        outcome = self._not_sent(work)
                    else:
                        outcome = await self._process(work)
                except asyncio.CancelledError:
                    if self._closing or not self._forced:
                        raise  # _shutdown accounts for the item
                    _uncancel()  # interrupt(): report the item, then carry on to the end
                    outcome = self._interrupted_outcome(work)
                del self._busy[me]
                if outcome is not None:
                    self._out.put_nowait(outcome)
                self._changed.set()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug in a callback, a bad key, a closed client
            self._busy.pop(me, None)
            self._out.put_nowait(_Crash(exc))
            return
        self._running -= 1
        if self._running == 0:
            self._out.put_nowait(_DONE)
        self._changed.set()

    async def _take(self) -> _Work[T] | None:
        """The next item for a worker: re-driven, or pulled from the input; None at the end."""
        while True:
            if self._deferred and not self._stopping and self._redrive_due():
                return self._from_deferred()
            if not self._exhausted and self._pulling():
                if self._has_room():
                    sync = self._sync
                    work = self._pull_sync(sync) if sync is not None else await self._pull()
                    if work is _SKIPPED or work is _AGAIN:
                        continue
                    if work is not None:
                        return work  # type: ignore[return-value]
                    continue
                if not self._ordered:  # the caller is behind: wait until it takes some
                    self._room_waiters += 1
                    try:
                        self._changed.clear()
                        await self._changed.wait()
                    finally:
                        self._room_waiters -= 1
                    continue
            elif not self._busy:  # the input is done and everything taken has settled
                if not self._deferred:
                    return None
                if self._stopping:  # no second chance after stop(): report as it stands
                    self._settle_deferred()
                    continue
                self._redriving = True  # the one redrive pass, now that nothing else runs
                continue
            self._changed.clear()
            await self._changed.wait()

    def _redrive_due(self) -> bool:
        return self._redriving or len(self._deferred) >= DEFERRED_CAP or (
            self._ordered and self._next_yield in self._deferred
        )

    def _pulling(self) -> bool:
        """Whether workers take input: until stop(); after abort() only to report each
        remaining item ``not_sent`` (``report_unsent``)."""
        if not self._stopping:
            return True
        return (self._stopped_by is not None and self._report_unsent
                and not self._stop_requested and not self._closing)

    def _has_room(self) -> bool:
        if self._ordered:
            return self._index < self._next_yield + self._window
        return self._out.qsize() < self._concurrency

    def _from_deferred(self) -> _Work[T]:
        work = self._deferred.pop(min(self._deferred))
        work.redrive = True
        work.settled = False
        return work

    def _pull_sync(self, source: Iterator[T]) -> _Work[T] | object | None:
        """Pull one item of a plain iterable (no coroutine per item); None at its end."""
        try:
            item = next(source)
        except StopIteration:
            self._end_of_input()
            return None
        return self._received(item)

    async def _pull(self) -> _Work[T] | object | None:
        """Pull one item of an async iterable; None when the input is exhausted (or stop()
        ended the wait)."""
        source = self._source
        async with self._pull_lock:
            if self._exhausted or not self._pulling() or not self._has_room():
                return _AGAIN  # things changed while this worker waited for the lock
            assert isinstance(source, AsyncIterator)
            self._puller = asyncio.current_task()
            try:
                # stop() cancels the worker only while it waits here, inside the input:
                # an item the input has produced is returned in the same step, never lost.
                item = await anext(source)
            except StopAsyncIteration:
                self._end_of_input()
                return None
            except asyncio.CancelledError:
                if self._closing or not self._stop_requested:
                    raise
                _uncancel()
                self._end_of_input()
                return None
            finally:
                self._puller = None
        return self._received(item)

    def _received(self, item: T) -> _Work[T] | object:
        """Number a pulled item and look it up in the journal."""
        index = self._index
        self._index += 1
        work = self._prepare(index, item)
        previous = work.previous
        if previous is not None and previous.status == "succeeded":
            self._report.skipped += 1
            self._out.put_nowait(Outcome(index, item, "skipped", record_id=previous.record_id,
                                         _key=work.key))
            return _SKIPPED
        return work

    def _end_of_input(self) -> None:
        self._exhausted = True
        self._changed.set()

    def _prepare(self, index: int, item: T) -> _Work[T]:
        journal = self._journal
        if self._key is None and journal is None:
            return _Work(index, item, None, None)
        key = self._key(item) if self._key is not None else default_key(item)
        if not isinstance(key, str) or not key:
            raise UsageError(f"key= must return a non-empty str, got {key!r} for item {index}")
        previous = journal.previous(index) if journal is not None else None
        if previous is not None and previous.digest != key_digest(key):
            raise UsageError(
                f"journal {self._journal_path}: item {index} has key {key!r}, which is not "
                "the item an earlier run recorded there; the input changed. Use the same "
                "input, or another journal path to start over"
            )
        return _Work(index, item, key, previous)

    # -- one item ---------------------------------------------------------------------

    async def _process(self, work: _Work[T]) -> Outcome[T] | None:
        """Settle one item: its outcome, or None when set aside for the redrive pass."""
        try:
            keys = self._keys(work)
        except Exception as exc:  # the caller's request= failed on this item: reject it
            error = UsageError(f"cannot build the request for item {work.index}: {exc}")
            error.__cause__ = exc
            return self._final(work, "failed", error=error)

        previous = work.previous
        rounds = 0
        if work.redrive and not await self._client.wait_reachable(self._redrive_wait):
            return self._unreachable(work)
        if work.doubt or (previous is not None and previous.status in ("started", "unknown")):
            # It may have executed (earlier, or in an earlier run): look before sending (§12.5).
            if self._reconcile is not None:
                found = await self._lookup(work)
                if isinstance(found, OutcomeUnknownError):
                    return self._unresolved(work, found)
                if found is not None:
                    return self._reconciled(work, found)
                rounds = 1
            elif not self._resend_in_doubt:
                status = previous.status if previous is not None else "unknown"
                doubt = OutcomeUnknownError(
                    f"{self._action}: item {work.index} may have executed in an earlier run "
                    f"(the journal says {status!r}); pass reconcile= to resolve it",
                    action=self._action,
                )
                return self._final(work, "unknown", error=doubt)

        while True:
            if self._stopped_by is not None:  # abort() while this item waited (a lookup)
                return self._not_sent(work)
            if self._journal is not None and work.key is not None and not work.marked:
                self._journal.started(work.index, work.key)  # on record before it can leave
                work.marked = True
            work.attempts += 1
            try:
                data = await self._send(keys)
            except OutcomeUnknownError as exc:
                if self._reconcile is None:
                    return self._final(work, "unknown", error=exc)
                found = await self._lookup(work)
                if isinstance(found, OutcomeUnknownError):
                    return self._unresolved(work, found)
                if found is not None:
                    return self._reconciled(work, found)
                rounds += 1
                if rounds >= MAX_RECONCILE_ROUNDS:
                    return self._final(work, "unknown", error=exc)
                self._report.count_retry("resend_after_reconcile")
                continue
            except ClientClosedError:
                raise
            except (RateLimitError, ServerError, TransportError) as exc:
                # Retries exhausted, and (for a write) it provably did not execute.
                if work.redrive and isinstance(exc, TransportError) \
                        and self._client.counters.breaker in ("open", "probing"):
                    # The outage is not over: wait for an answer, then send it again
                    # (never sent, so it may go again: docs/protocol.md §12.5).
                    work.error = exc
                    if await self._client.wait_reachable(self._redrive_wait):
                        continue
                    return self._unreachable(work)
                if not self._may_defer(work):
                    return self._final(work, "failed", error=exc)
                self._defer(work, exc, cause=exc)
                return None
            except SippetError as exc:
                return self._final(work, "failed", error=exc)
            return self._final(work, "succeeded", data=data)

    async def _send(self, keys: dict[str, Any]) -> Any:
        """``client.run``; an error no retry can fix stops the job before it is reported."""
        try:
            return await self._client.run(self._action, **keys)
        except SippetError as exc:
            if is_fatal(exc):
                self.abort(exc)
            raise

    def _unreachable(self, work: _Work[T]) -> Outcome[T]:
        """The redrive waited ``redrive_wait`` seconds into an outage for nothing."""
        error = ServerUnreachableError(
            f"{self._action}: item {work.index}: the server stayed unreachable for "
            f"{self._redrive_wait:g}s (redrive_wait); "
            + ("it may have executed before" if work.doubt else "not sent"))
        error.__cause__ = work.error
        return self._final(work, "unknown" if work.doubt else "failed", error=error)

    def _may_defer(self, work: _Work[T]) -> bool:
        return self._redrive_enabled and not work.redrive and not self._stopping

    def _defer(self, work: _Work[T], error: SippetError, *, cause: SippetError) -> None:
        """Set the item aside for the redrive pass (``error`` is reported if it never runs)."""
        work.error = error
        work.settled = True
        self._deferred[work.index] = work
        self._report.count_retry(f"redrive_{_cause(cause)}")

    def _unresolved(self, work: _Work[T], error: OutcomeUnknownError) -> Outcome[T] | None:
        """The lookup failed. If only for now (429, 5xx, connection), the item is set aside
        and the redrive pass starts with the lookup again; it is never re-sent blind."""
        cause = error.__cause__
        if isinstance(cause, RateLimitError | ServerError | TransportError) and self._may_defer(
            work
        ):
            work.doubt = True
            self._defer(work, error, cause=cause)
            return None
        return self._final(work, "unknown", error=error)

    def _request_template(self) -> dict[str, Any]:
        """The keyword arguments every item shares (the job id is known by now)."""
        template: dict[str, Any] = {}
        if self._fields is not None:
            template["fields"] = self._fields
        if self._idempotent is not None:
            template["idempotent"] = self._idempotent
        self._key_prefix = None
        if not is_read_action(self._action):
            # Stable across resumes of one journal, distinct between jobs (§12.4).
            self._key_prefix = self._job_id[:16] + "-"
        return template

    def _keys(self, work: _Work[T]) -> dict[str, Any]:
        if self._request is None:
            keys = {"input": work.item, **self._template}
        else:
            keys = {**self._template, **self._request(work.item)}
        if self._key_prefix is not None and "idempotency_key" not in keys:
            keys["idempotency_key"] = self._key_prefix + str(work.index)
        return keys

    async def _lookup(self, work: _Work[T]) -> Any:
        """Run ``reconcile``: the record, None, or an OutcomeUnknownError if it failed."""
        assert self._reconcile is not None
        try:
            found = self._reconcile(work.item)
            return await found if inspect.isawaitable(found) else found
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_fatal(exc):  # the lookup's own request says no request can succeed
                self.abort(exc)
            error = OutcomeUnknownError(
                f"{self._action}: item {work.index}: reconcile failed, outcome unknown: {exc}",
                action=self._action,
            )
            error.__cause__ = exc
            return error

    def _reconciled(self, work: _Work[T], found: Any) -> Outcome[T]:
        self._report.reconciled += 1
        return self._final(work, "succeeded", data=found, reconciled=True)

    def _final(
        self, work: _Work[T], status: Literal["succeeded", "failed", "unknown"], *,
        data: Any = None, error: SippetError | None = None, reconciled: bool = False,
    ) -> Outcome[T]:
        work.settled = True
        record_id = _record_id(data) if status == "succeeded" else None
        if self._journal is not None and work.key is not None:
            self._journal.finished(work.index, work.key, status, record_id=record_id,
                                   error=error)
        if status == "succeeded":
            self._report.succeeded += 1
        elif status == "failed":
            self._report.failed += 1
        else:
            self._report.unknown += 1
        return Outcome(work.index, work.item, status, data=data, error=error,
                       attempts=work.attempts, record_id=record_id, reconciled=reconciled,
                       _key=work.key)

    def _not_sent(self, work: _Work[T]) -> Outcome[T]:
        """An item the job stopped before sending. No journal line: a later run sends it
        (or, when an earlier run left it in doubt, resolves that first)."""
        work.settled = True
        self._report.not_sent += 1
        return Outcome(work.index, work.item, "not_sent", error=self._stopped_by,
                       attempts=work.attempts, _key=work.key)

    def _interrupted_outcome(self, work: _Work[T]) -> Outcome[T]:
        """An item cut off mid-flight: unknown; its journal line stays "started" (in doubt)."""
        work.settled = True
        error = OutcomeUnknownError(
            f"{self._action}: item {work.index} was in flight when the job was stopped; "
            "it may have executed", action=self._action,
        )
        self._report.unknown += 1
        self._report.interrupted += 1
        return Outcome(work.index, work.item, "unknown", error=error, attempts=work.attempts,
                       _key=work.key)


def _uncancel() -> None:
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


async def _closed() -> AsyncGenerator[Any, None]:
    return
    yield  # pragma: no cover - makes this an async generator


def _record_id(data: Any) -> str | None:
    if type(data) is dict or isinstance(data, Mapping):
        value = data.get("id")
        return value if isinstance(value, str) else None
    return None


def _cause(exc: SippetError) -> str:
    if isinstance(exc, RateLimitError):
        return "rate_limited"
    if isinstance(exc, ServerError):
        return f"http_{exc.status}"
    return "transport"


def bulk(
    client: Runner,
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
    reconcile: Reconcile[T] | None = None,
    idempotent: bool | None = None,
    report_unsent: bool = True,
    redrive: bool = True,
    redrive_wait: float = DEFAULT_REDRIVE_WAIT,
) -> BulkJob[T]:
    """Validate the options and build the job (nothing runs until it is iterated)."""
    if not isinstance(action, str) or not action:
        raise UsageError(f"action must be a non-empty string, got {action!r}")
    if isinstance(items, str | bytes | bytearray | Mapping) or not isinstance(
        items, Iterable | AsyncIterable
    ):
        raise UsageError(
            f"items must be a list, an iterable or an async iterable of items, got "
            f"{type(items).__name__}"
        )
    if concurrency is None:
        concurrency = client.config.max_concurrency
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise UsageError(f"concurrency must be an int >= 1, got {concurrency!r}")
    if window is None:
        window = ORDER_WINDOW_FACTOR * concurrency
    if isinstance(window, bool) or not isinstance(window, int) or window < concurrency:
        raise UsageError(f"window must be an int >= concurrency ({concurrency}), got {window!r}")
    for name, value in (("request", request), ("key", key), ("reconcile", reconcile)):
        if value is not None and not callable(value):
            raise UsageError(f"{name} must be callable, got {value!r}")
    if fields is not None and (isinstance(fields, str | bytes) or not isinstance(fields, Sequence)):
        raise UsageError(f"fields must be a list, e.g. ['id'], got {fields!r}")
    if isinstance(redrive_wait, bool) or not isinstance(redrive_wait, int | float) \
            or math.isnan(redrive_wait) or redrive_wait < 0:
        raise UsageError(f"redrive_wait must be a number of seconds >= 0 (inf: as long as "
                         f"it takes), got {redrive_wait!r}")
    return BulkJob(
        client, action, items, fields=fields, request=request, key=key,
        concurrency=concurrency, ordered=ordered, window=window, journal=journal,
        report_unsent=report_unsent,
        reconcile=reconcile, idempotent=idempotent, redrive=redrive,
        redrive_wait=float(redrive_wait),
    )
