"""A generic work scheduler: N worker tasks over a lazily read input, one output per item.

```
items ──next()──▶ handler.admit ──▶ N workers: handler.process ──▶ out-queue ──▶ caller
                                        └ None: set aside ─▶ processed again later
```

It knows nothing of what an item is or what processing it means; the ``Handler`` does.
``concurrency`` workers pull items straight from the input, one at a time, so at most that
many are in flight and none that was pulled waits unstarted. Unordered, a worker pulls only
while fewer than ``concurrency`` outputs wait for the caller; ordered, only while the item
fits the reorder ``window``. Memory stays flat in the input size. An item the handler sets
aside is processed again when the input has ended and nothing else runs (or earlier, when
too many wait or an ordered job waits for it); when the job stops instead, the handler
settles it as it stands. The job's ``JobState`` (``_state``) says what workers may do.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Generic, Protocol, TypeVar

from sippet_async._jobs._state import (
    PULLING,
    REDRIVES,
    STOP_REQUESTED,
    JobEvent,
    JobState,
    next_state,
)

__all__ = ["Finished", "Handler", "Scheduler"]

T = TypeVar("T")
W = TypeVar("W")
O = TypeVar("O")  # noqa: E741 - the output type
T_contra = TypeVar("T_contra", contravariant=True)

# Items set aside for later; past this many they are processed again at once so that an
# outage on a million-item input does not grow memory.
DEFERRED_CAP: Final = 4096

_DONE: Final = object()


@dataclass(frozen=True, slots=True)
class Finished(Generic[O]):
    """``admit``'s answer for an item that needs no processing: its output."""

    output: O


@dataclass(frozen=True, slots=True)
class _Crash:
    exc: BaseException


class Handler(Protocol[T_contra, W, O]):
    """What the scheduler calls; every method but ``process`` returns without waiting."""

    def admit(self, index: int, item: T_contra) -> W | Finished[O]:
        """Prepare a pulled item for processing (or say it needs none)."""

    async def process(self, work: W) -> O | None:
        """Process an item; None sets it aside to be processed again later."""

    def release(self, work: W) -> O:
        """The output of an item set aside that will not be processed again."""

    def cut_off(self, work: W) -> O | None:
        """The output of an item cancelled mid-processing (None if it already had one)."""


class Scheduler(Generic[T, W, O]):
    """Runs ``handler`` over ``items`` with ``concurrency`` workers; iterate it for the
    outputs (in input order if ``ordered``). ``start()`` first; ``aclose()`` always."""

    def __init__(
        self, items: Iterable[T] | AsyncIterable[T], handler: Handler[T, W, O], *,
        concurrency: int, ordered: bool, window: int, name: str = "scheduler",
    ) -> None:
        self.state = JobState.RUNNING
        self.interrupted: list[O] = []  # outputs of items cut off after the caller left
        self._items = items
        self._handler = handler
        self._concurrency = concurrency
        self._ordered = ordered
        self._window = window
        self._name = name  # of the worker tasks, for debugging: "<name>-worker-<n>"
        # Outputs (and _DONE, _Crash) waiting for the caller, its one reader: a deque and
        # a future to wake it, not an asyncio.Queue (the register of speed shortcuts).
        self._out: deque[Any] = deque()
        self._arrival: asyncio.Future[None] | None = None  # the caller waits for an output
        self._buffer: dict[int, O] = {}  # ordered: outputs waiting for an earlier one
        self._room_waiters = 0  # workers waiting for the caller to take outputs
        self._changed = asyncio.Event()  # something settled, was yielded, or stop()
        # Workers waiting for ``_changed``; each clears it first, so a set() while none
        # waits changes nothing and the per-item one is skipped (the register).
        self._waiting = 0
        self._source: Iterator[T] | AsyncIterator[T] | None = None
        self._sync: Iterator[T] | None = None  # the same, when it is a plain iterator
        self._pull_lock = asyncio.Lock()  # an async input is pulled by one worker at a time
        self._puller: asyncio.Task[None] | None = None  # the worker awaiting the input
        self._index = 0  # of the next item to pull
        self._exhausted = False
        self._workers: list[asyncio.Task[None]] = []
        self._running = 0  # workers that have not finished
        self._busy: dict[asyncio.Task[None], W] = {}  # worker -> item it works on
        self._deferred: dict[int, W] = {}  # index -> item set aside
        self._next_yield = 0

    # -- the job's state ----------------------------------------------------------------

    def _move(self, event: JobEvent) -> bool:
        """Apply ``event``; whether the state changed."""
        before = self.state
        self.state = next_state(before, event)
        return self.state is not before

    def stop(self) -> None:
        """Take no more input; items already taken finish."""
        self._move(JobEvent.STOP)
        if self._puller is not None:
            self._puller.cancel()  # it waits inside the input; see _pull
        self._changed.set()

    def abort(self) -> None:
        """Process nothing more: the handler sees ``state`` and reports what comes unsent.
        Items set aside are released at once (no second pass after an abort)."""
        if self._move(JobEvent.ABORT):
            self._release_deferred()
            self._changed.set()

    def interrupt(self) -> None:
        """``stop()``, and cancel what is in flight (the handler's ``cut_off`` reports it)."""
        self.stop()
        self._move(JobEvent.INTERRUPT)
        for worker in list(self._busy):
            worker.cancel()

    # -- the caller's side --------------------------------------------------------------

    def start(self) -> None:
        """Open the input and start the workers."""
        items = self._items
        if isinstance(items, AsyncIterable):
            self._source = aiter(items)
        else:
            self._source = self._sync = iter(items)
        self._running = self._concurrency
        self._workers = [
            asyncio.create_task(self._work(), name=f"{self._name}-worker-{n}")
            for n in range(self._concurrency)
        ]

    def __aiter__(self) -> Scheduler[T, W, O]:
        return self

    def poll(self) -> O | None:
        """The next output if one is ready now, else None (outputs are never None).

        Raises:
            StopAsyncIteration: every output has been taken.
        """
        buffer, out = self._buffer, self._out
        while True:
            if buffer and self._next_yield in buffer:
                output = buffer.pop(self._next_yield)
                self._next_yield += 1
                self._changed.set()
                return output
            if not out:
                return None
            message = out.popleft()
            if type(message) is tuple:  # an (index, output), the common case: tested first
                index, output = message
                if not self._ordered:
                    if self._room_waiters:
                        self._changed.set()
                    return output
                buffer[index] = output
                continue
            if message is _DONE:
                out.appendleft(_DONE)  # the end stays the end
                raise StopAsyncIteration
            raise message.exc  # a _Crash

    async def __anext__(self) -> O:
        while True:
            output = self.poll()
            if output is not None:
                return output
            arrival = self._arrival = asyncio.get_running_loop().create_future()
            try:
                await arrival
            finally:
                self._arrival = None

    def _put(self, message: Any) -> None:
        """Hand the caller an output (or the end, or a crash) and wake it if it waits."""
        self._out.append(message)
        arrival = self._arrival
        if arrival is not None and not arrival.done():
            arrival.set_result(None)

    async def aclose(self) -> None:
        """Cancel every worker and wait for them; items cut off go to ``interrupted``."""
        self._move(JobEvent.CLOSE)
        for task in self._workers:
            task.cancel()
        try:
            if self._workers:
                await asyncio.wait(self._workers)
        finally:
            for work in self._busy.values():  # cancelled before they could say
                output = self._handler.cut_off(work)
                if output is not None:
                    self.interrupted.append(output)
            self._busy.clear()
            self._move(JobEvent.CLOSED)

    # -- the workers --------------------------------------------------------------------

    async def _work(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        handler, busy, sync, out = self._handler, self._busy, self._sync, self._out
        try:
            while True:
                # A plain iterable with room and nothing set aside: pull here, without a
                # coroutine or a method call per item (the register of speed shortcuts);
                # anything else goes through ``_take``.
                if sync is not None and not self._deferred and not self._exhausted \
                        and self.state in PULLING and (
                            self._index < self._next_yield + self._window if self._ordered
                            else len(out) < self._concurrency):
                    try:
                        item = next(sync)
                    except StopIteration:
                        self._end_of_input()
                        continue
                    index = self._index
                    self._index = index + 1
                    work = handler.admit(index, item)
                    if isinstance(work, Finished):
                        self._put((index, work.output))
                        continue
                else:
                    taken = await self._take()
                    if taken is None:
                        break
                    index, work = taken
                busy[me] = work
                try:
                    output = await handler.process(work)
                except asyncio.CancelledError:
                    if self.state is not JobState.INTERRUPTING:
                        raise  # closing, or cancelled from outside: aclose accounts for it
                    _uncancel()  # interrupt(): report the item, then carry on to the end
                    output = handler.cut_off(work)
                del busy[me]
                if output is None:
                    self._deferred[index] = work
                else:  # _put, written out: once per item
                    out.append((index, output))
                    arrival = self._arrival
                    if arrival is not None and not arrival.done():
                        arrival.set_result(None)
                if self._waiting:
                    self._changed.set()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug in a callback, a bad key, a closed client
            busy.pop(me, None)
            self._put(_Crash(exc))
            return
        self._running -= 1
        if self._running == 0:
            self._put(_DONE)
        self._changed.set()

    async def _take(self) -> tuple[int, W] | None:
        """The next item for a worker: re-driven, or pulled from the input; None at the end."""
        while True:
            state = self.state
            if self._deferred and state in REDRIVES and self._redrive_due():
                index = min(self._deferred)
                return index, self._deferred.pop(index)
            if not self._exhausted and state in PULLING:
                if self._has_room():
                    taken = self._pull_sync(self._sync) if self._sync is not None \
                        else await self._pull()
                    if taken is not None:
                        return taken
                    continue
                if not self._ordered:  # the caller is behind: wait until it takes some
                    self._room_waiters += 1
                    try:
                        await self._wait_changed()
                    finally:
                        self._room_waiters -= 1
                    continue
            elif not self._busy:  # the input is done and everything taken has settled
                if not self._deferred:
                    return None
                if state not in REDRIVES:  # no second pass after stop(): as it stands
                    self._release_deferred()
                    continue
                self._move(JobEvent.INPUT_DONE)  # the one pass, now that nothing else runs
                continue
            await self._wait_changed()

    async def _wait_changed(self) -> None:
        """Wait until something settles, is yielded or stops (see ``_waiting``)."""
        self._changed.clear()
        self._waiting += 1
        try:
            await self._changed.wait()
        finally:
            self._waiting -= 1

    def _redrive_due(self) -> bool:
        return self.state is JobState.REDRIVING or len(self._deferred) >= DEFERRED_CAP or (
            self._ordered and self._next_yield in self._deferred
        )

    def _has_room(self) -> bool:
        if self._ordered:
            return self._index < self._next_yield + self._window
        return len(self._out) < self._concurrency

    def _release_deferred(self) -> None:
        """Settle the items set aside as they stand, in input order."""
        for index in sorted(self._deferred):
            self._put((index, self._handler.release(self._deferred.pop(index))))

    def _pull_sync(self, source: Iterator[T]) -> tuple[int, W] | None:
        """Pull one item of a plain iterable (no coroutine per item); None to look again."""
        try:
            item = next(source)
        except StopIteration:
            self._end_of_input()
            return None
        return self._received(item)

    async def _pull(self) -> tuple[int, W] | None:
        """Pull one item of an async iterable; None to look again (the input ended, stop()
        ended the wait, or things changed while this worker waited for its turn)."""
        source = self._source
        async with self._pull_lock:
            if self._exhausted or self.state not in PULLING or not self._has_room():
                return None
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
                if self.state not in STOP_REQUESTED:
                    raise
                _uncancel()
                self._end_of_input()
                return None
            finally:
                self._puller = None
        return self._received(item)

    def _received(self, item: T) -> tuple[int, W] | None:
        """Number a pulled item and hand it to the handler; None if it needs no work."""
        index = self._index
        self._index += 1
        work = self._handler.admit(index, item)
        if isinstance(work, Finished):
            self._put((index, work.output))
            return None
        return index, work

    def _end_of_input(self) -> None:
        self._exhausted = True
        self._changed.set()


def _uncancel() -> None:
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()
