"""The async iterator behind ``client.iter``: tasks and state only; the rules are ``_walk``.

Every page request goes through ``client.run_with_metadata`` (the client's one pipeline:
limits, retries, decoding). While the caller consumes one page the next one is already in
flight (``concurrency`` of them for offset pages), so memory stays bounded by
``concurrency + 1`` pages.

Records are handed out straight from each page's list iterator, with no bookkeeping per
record: by an async generator that ``async for`` drives directly on Python 3.11, by an
``async def __anext__`` from 3.12 on, where an async generator's every item got dearer than a
coroutine (docs/design.md, register of speed shortcuts). How far the caller got is read from
that list iterator when ``resume_token`` is asked for.

Cleanup does not depend on the caller: the page stream and the record generator hold no
reference back to the iterator, so after a ``break`` the iterator is freed at once and
asyncio's async-generator finalizer closes them, cancelling the prefetch. ``aclose()`` or
``async with`` make that deterministic.
"""

from __future__ import annotations

import asyncio
import functools
import operator
import sys
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
    Sequence,
)
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, Self, TypeVar, cast

from sippet_async._errors import UsageError
from sippet_async._walk import (
    Page,
    PageRequest,
    Received,
    ResumeToken,
    Walk,
    page_type,
    query_key,
)

if TYPE_CHECKING:
    from sippet_async._runner import RequestKeys, Runner

__all__ = ["RecordIterator", "iterate"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

Fetch = Callable[[PageRequest], Coroutine[Any, Any, Any]]

TASK_NAME: Final = "sippet_async page fetch"  # lets tests and debuggers spot our tasks


class RecordIterator(Generic[T]):
    """An async iterator over every record of a list action; see ``SippetClient.iter``.

    ``async for record in it`` yields records; ``async for page in it.pages()`` yields
    ``Page`` objects instead (use one or the other). ``resume_token`` is the position
    after the last record (or page) handed out. Close it with ``aclose()`` or use it as
    ``async with``; a ``break`` also cancels the page in flight.
    """

    def __init__(self, fetch: Fetch, walk: Walk) -> None:
        self._walk = walk
        self._stream: AsyncGenerator[Received[T], None] = _stream(fetch, walk)
        self._initial = walk.token
        self._position = _Position()
        self._records: _Handout[T] | None = None
        self._mode: str | None = None

    def __repr__(self) -> str:
        state = "done" if self._walk.done else "walking"
        return f"<RecordIterator {state} at {self.resume_token.kind}>"

    @property
    def resume_token(self) -> ResumeToken:
        """Where a new walk would continue: right after what was handed out so far.

        Pass it as ``resume=`` (or ``str(token)``, e.g. saved to disk) to a new ``iter``
        of the same action, input, filter and sort.
        """
        position = self._position
        if position.end is None:
            return self._initial
        # A list iterator's length hint is exact: the records of this page not handed out.
        left = operator.length_hint(position.rest)
        if not left:
            return position.end
        return position.start.advanced(position.size - left)

    def __aiter__(self) -> AsyncIterator[T]:
        # ``async for`` drives the hand-out itself, with no layer of ours per record
        # (docs/design.md, register of speed shortcuts). One hand-out per iterator, so a
        # loop left with ``break`` can be continued by the next one.
        if self._records is None:
            self._enter("records")
            self._records = HANDOUT(self._stream, self._position)
        return self._records

    def __anext__(self) -> Awaitable[T]:
        """The next record; ``StopAsyncIteration`` at the end."""
        return self.__aiter__().__anext__()

    def pages(self) -> _PageIterator[T]:
        """Iterate page by page: each ``Page`` holds its ``results`` and page metadata.

        Example:
            async for page in client.iter("list_contacts", fields=["id"]).pages():
                await save_batch(page.results)
        """
        self._enter("pages")
        return _PageIterator(self)

    async def aclose(self) -> None:
        """Stop the walk and cancel any page still in flight. Safe to call twice."""
        if self._records is not None:
            await self._records.aclose()
        await self._stream.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- internals --------------------------------------------------------------------

    def _enter(self, mode: str) -> None:
        if self._mode is None:
            self._mode = mode
        elif self._mode != mode:
            raise UsageError("iterate either records or .pages() of one iterator, not both")

    async def _next_page(self) -> Page[T]:
        received = await self._stream.__anext__()
        self._position.enter(received, iter(()))  # the caller holds the whole page
        return received.page


class _Position:
    """How far the caller got in the page being handed out: where it starts and ends, its
    size, and an iterator over its records still to come (exhausted once all are out).

    It keeps tokens, not the page: a page the caller is done with is freed before the
    next one is decoded (docs/design.md, register of speed shortcuts).
    """

    __slots__ = ("end", "rest", "size", "start")

    def __init__(self) -> None:
        self.start = ResumeToken()
        self.end: ResumeToken | None = None  # None: no page yet
        self.size = 0
        self.rest: Iterator[Any] = iter(())

    def enter(self, received: Received[Any], rest: Iterator[Any]) -> None:
        """A new page, of which ``rest`` is still to be handed out."""
        page = received.page
        self.start, self.end, self.size = received.start, page.resume_token, len(page.results)
        self.rest = rest

    def hand_out(self, received: Received[T]) -> Iterator[T]:
        """Enter a page whose records go out one by one: the iterator over them. Only it
        holds the page once the caller drops ``received``, so the page is freed once handed
        out."""
        rest = iter(received.page.results)
        self.enter(received, rest)
        return rest


class _PageIterator(Generic[T]):
    """``RecordIterator.pages()``: the same walk, one ``Page`` at a time."""

    def __init__(self, parent: RecordIterator[T]) -> None:
        self._parent = parent

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Page[T]:
        return await self._parent._next_page()

    async def aclose(self) -> None:
        """Close the underlying iterator."""
        await self._parent.aclose()


async def _stream(fetch: Fetch, walk: Walk) -> AsyncGenerator[Received[Any], None]:
    """Fetch pages in order, keeping what ``walk`` allows in flight ahead of the caller."""
    in_flight: deque[tuple[PageRequest, asyncio.Task[Any]]] = deque()
    try:
        while True:
            _launch(fetch, walk, in_flight)
            if not in_flight:
                return
            request, task = in_flight.popleft()
            received = walk.receive(request, await task)
            if received.discard_in_flight:
                await _cancel(in_flight)
            if _launch(fetch, walk, in_flight):
                # The new fetch writes its request before the page is handed out, even if
                # the caller never awaits between records. Two turns of the loop: one runs
                # the fetch up to its reply; before Python 3.12 aiohttp writes the body from
                # a task of its own (docs/design.md, register of speed shortcuts).
                await asyncio.sleep(0)
                await asyncio.sleep(0)
            yield received
            del received  # not held while the next page is awaited and decoded
    finally:
        await _cancel(in_flight)


class _Handout(Protocol[T_co]):
    """Hands each page's records out in order, one by one; ``position`` shows how far."""

    def __aiter__(self) -> AsyncIterator[T_co]: ...

    def __anext__(self) -> Awaitable[T_co]: ...

    def aclose(self) -> Awaitable[object]: ...


async def _records(stream: AsyncGenerator[Received[T], None],
                   position: _Position) -> AsyncGenerator[T, None]:
    """The hand-out on Python 3.11: an async generator, ``async for``'s cheapest there."""
    try:
        async for received in stream:
            rest = position.hand_out(received)
            del received  # only ``rest`` holds the page: freed once handed out
            for record in rest:
                yield record
    finally:
        await stream.aclose()  # cancels the prefetch when the caller stops early


class _Records(Generic[T]):
    """The hand-out from Python 3.12 on: a coroutine per record, cheaper there than an
    async generator's item. A ``break`` drops it, and with it the page stream, whose
    finalizer cancels the prefetch."""

    __slots__ = ("_position", "_stream")

    def __init__(self, stream: AsyncGenerator[Received[T], None],
                 position: _Position) -> None:
        self._stream = stream
        self._position = position

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        position = self._position
        for record in position.rest:
            return cast("T", record)
        while True:  # StopAsyncIteration from the stream at the end
            for record in position.hand_out(await self._stream.__anext__()):
                return record

    async def aclose(self) -> None:
        await self._stream.aclose()  # cancels the prefetch


HANDOUT: Final[Callable[[AsyncGenerator[Received[Any], None], _Position], _Handout[Any]]] = (
    _records if sys.version_info < (3, 12) else _Records)


def _launch(fetch: Fetch, walk: Walk,
            in_flight: deque[tuple[PageRequest, asyncio.Task[Any]]]) -> bool:
    """Start every fetch ``walk`` allows now; whether any was started."""
    launched = False
    while (request := walk.next_request()) is not None:
        in_flight.append((request, asyncio.create_task(fetch(request), name=TASK_NAME)))
        launched = True
    return launched


async def _cancel(in_flight: deque[tuple[PageRequest, asyncio.Task[Any]]]) -> None:
    """Cancel and await the tasks, so none is left pending or with an unread exception."""
    tasks = [task for _, task in in_flight]
    in_flight.clear()
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


async def _fetch_page(client: Runner, action: str, keys: Mapping[str, Any],
                      decode_as: Any, request: PageRequest) -> Any:
    """One page through the client's pipeline, decoded straight into the page type."""
    page = request.wire()
    request_keys = cast("RequestKeys", {**keys, "page": page} if page else keys)
    # page_size=None on a fresh start sends no `page` at all: the server's default.
    result = await client.run_with_metadata(action, type=decode_as, **request_keys)
    return result.data


def iterate(
    client: Runner,
    action: str,
    *,
    fields: Sequence[str | Mapping[str, Any]],
    filter: Mapping[str, Any] | None,
    sort: str | Sequence[str] | None,
    page_size: int | None,
    limit: int | None,
    input: Mapping[str, Any] | None,
    type: Any,
    concurrency: int,
    resume: ResumeToken | str | None,
) -> RecordIterator[Any]:
    """Build the iterator for ``SippetClient.iter`` (arguments are checked here)."""
    if isinstance(resume, str):
        resume = ResumeToken.parse(resume)
    elif resume is not None and not isinstance(resume, ResumeToken):
        raise UsageError(f"resume must be a ResumeToken or its string, got {resume!r:.60}")
    walk = Walk(page_size=page_size, limit=limit, resume=resume, concurrency=concurrency,
                query=query_key(action, input, filter, sort))
    given = {"fields": fields, "filter": filter, "sort": sort, "input": input}
    keys = {name: value for name, value in given.items() if value is not None}
    fetch = functools.partial(_fetch_page, client, action, keys, page_type(type))
    return RecordIterator(fetch, walk)
