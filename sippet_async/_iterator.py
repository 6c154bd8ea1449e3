"""The async iterator behind ``client.iter``: tasks and state only; the rules are ``_walk``.

Every page request goes through ``client.run_with_metadata`` (the client's one pipeline:
limits, retries, decoding). While the caller consumes one page the next one is already in
flight (``concurrency`` of them for offset pages), so memory stays bounded by
``concurrency + 1`` pages.

Cleanup does not depend on the caller: the page stream is an async generator that holds no
reference back to the iterator, so after a ``break`` the iterator is freed at once and
asyncio's async-generator finalizer closes the stream, cancelling the prefetch. ``aclose()``
or ``async with`` make that deterministic.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import AsyncGenerator, Callable, Coroutine, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Generic, Self, TypeVar, cast

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
        self._current: Received[T] | None = None
        self._results: list[T] = []
        self._index = 0
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
        current = self._current
        if current is None:
            return self._initial
        if self._index >= len(self._results):
            return current.page.resume_token
        return current.start.advanced(self._index)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        index = self._index
        if index >= len(self._results):
            self._enter("records")
            while True:
                await self._next_page()  # StopAsyncIteration at the end
                if self._results:
                    break
            index = 0
        self._index = index + 1
        return self._results[index]

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
        self._current = received
        self._results = received.page.results
        self._index = 0
        return received.page


class _PageIterator(Generic[T]):
    """``RecordIterator.pages()``: the same walk, one ``Page`` at a time."""

    def __init__(self, parent: RecordIterator[T]) -> None:
        self._parent = parent

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Page[T]:
        page = await self._parent._next_page()
        self._parent._index = len(page.results)  # the caller holds the whole page
        return page

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
            data = await task
            received = walk.receive(request, data)
            if received.discard_in_flight:
                await _cancel(in_flight)
            _launch(fetch, walk, in_flight)  # prefetch before handing the page out
            yield received
    finally:
        await _cancel(in_flight)


def _launch(fetch: Fetch, walk: Walk,
            in_flight: deque[tuple[PageRequest, asyncio.Task[Any]]]) -> None:
    while (request := walk.next_request()) is not None:
        in_flight.append((request, asyncio.create_task(fetch(request), name=TASK_NAME)))


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
