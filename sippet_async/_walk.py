"""The page-walking rules of docs/protocol.md §5, with no I/O: a sans-I/O state machine.

``Walk`` says which page request may be sent next and turns each reply into the records
to yield; the async iterator in ``_iterator`` only moves bytes and tasks around it. Like
``_protocol`` this module imports neither aiohttp nor asyncio and never awaits, so the
property tests drive the very same rules over a simulated server.

The rules, all read from each reply (never assumed, §5.1):

* a plain JSON array is the whole result: yield it, stop;
* an offset page: ``offset += len(results)`` while ``hasMore`` (§5.4);
* a keyset page: ``after = nextPage`` while ``hasMore`` and ``nextPage`` is not null;
* ``limit`` shrinks the last request so no unneeded record or page is fetched;
* a server that clamps the page size (its reply's ``limit`` is below what was asked) is
  followed: later requests ask for what it returned;
* with ``concurrency > 1`` and offset pages, up to N offset windows are handed out at once;
  the total is unknown, so windows run ahead speculatively and everything after the first
  page with ``hasMore: false`` (or a short page that breaks contiguity) is discarded.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Final, Generic, Literal, TypeAlias, TypeVar

import msgspec

from sippet_async._errors import ProtocolError, UsageError
from sippet_async._models import KeysetPage, OffsetPage

__all__ = [
    "Page",
    "PageKind",
    "PageRequest",
    "Received",
    "ResumeToken",
    "Walk",
    "page_type",
    "query_key",
]

T = TypeVar("T")

PageKind: TypeAlias = Literal["offset", "keyset", "list"]
TokenKind: TypeAlias = Literal["start", "offset", "keyset", "list"]
Reply: TypeAlias = "OffsetPage[Any] | KeysetPage[Any] | list[Any] | None"

_TOKEN_PREFIX: Final = "sprt1."  # sippet resume token, version 1


class _TokenWire(msgspec.Struct, array_like=True, frozen=True):
    kind: TokenKind
    offset: int
    after: str | None
    skip: int
    query: str


_TOKEN_DECODER: Final = msgspec.json.Decoder(_TokenWire)


@dataclass(frozen=True, slots=True)
class ResumeToken:
    """Where a walk stands: the next record to yield. Pass it (or ``str(token)``) back as
    ``resume=`` to continue exactly there.

    ``kind`` is the page type the walk was following (``start`` before the first reply);
    ``offset`` the next record's offset (offset pages); ``after`` the keyset cursor of the
    page holding it and ``skip`` how many of that page's records were already yielded
    (per-record cursors are not exposed, §5.3); ``query`` fingerprints the action, filter,
    sort and input so a token is never applied to a different listing.
    """

    kind: TokenKind = "start"
    offset: int = 0
    after: str | None = None
    skip: int = 0
    query: str = ""

    def __str__(self) -> str:
        wire = _TokenWire(self.kind, self.offset, self.after, self.skip, self.query)
        text = base64.urlsafe_b64encode(msgspec.json.encode(wire)).rstrip(b"=")
        return _TOKEN_PREFIX + text.decode("ascii")

    @classmethod
    def parse(cls, text: str) -> ResumeToken:
        """Read a token made by ``str(token)``.

        Raises:
            UsageError: the text is not a resume token.
        """
        if not isinstance(text, str) or not text.startswith(_TOKEN_PREFIX):
            raise UsageError(f"not a sippet resume token: {text!r:.60}")
        body = text[len(_TOKEN_PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            wire = _TOKEN_DECODER.decode(raw)
        except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
            raise UsageError(f"malformed resume token: {text!r:.60}") from exc
        if wire.offset < 0 or wire.skip < 0:
            raise UsageError(f"malformed resume token (negative position): {text!r:.60}")
        return cls(wire.kind, wire.offset, wire.after, wire.skip, wire.query)

    def advanced(self, records: int) -> ResumeToken:
        """The position ``records`` further into the page that starts here."""
        if records == 0:
            return self
        # Built directly: ``dataclasses.replace`` costs ~4k instructions, twice a page.
        if self.kind == "offset":
            return ResumeToken(self.kind, self.offset + records, self.after, self.skip,
                               self.query)
        return ResumeToken(self.kind, self.offset, self.after, self.skip + records, self.query)


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One page to ask for. ``skip`` records of its reply were already yielded (resume)."""

    limit: int | None
    offset: int | None = None
    after: str | None = None
    skip: int = 0

    def wire(self) -> dict[str, Any]:
        """The request's ``page`` object (§5.1); cursors go back byte for byte (§5.3)."""
        page: dict[str, Any] = {}
        if self.limit is not None:
            page["limit"] = self.limit
        if self.offset is not None:
            page["offset"] = self.offset
        if self.after is not None:
            page["after"] = self.after
        return page


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page as yielded by ``.pages()``: its records plus the server's page metadata.

    ``results`` holds exactly the records the iterator yields for this page (a resumed
    walk drops those already seen, ``limit`` trims the last page). ``resume_token`` is the
    position right after it.
    """

    type: PageKind
    results: list[T]
    has_more: bool
    resume_token: ResumeToken
    count: int | None = None
    limit: int | None = None
    offset: int | None = None
    after: str | None = None
    next_page: str | None = None
    previous_page: str | None = None


@dataclass(frozen=True, slots=True)
class Received(Generic[T]):
    """What ``Walk.receive`` made of a reply: the page to yield, where its first record
    sits, and whether every other request still in flight must be dropped."""

    page: Page[T]
    start: ResumeToken
    discard_in_flight: bool = False


@functools.lru_cache(maxsize=64)
def page_type(record: Any) -> Any:
    """The one type a list reply's ``data`` decodes into, for records of type ``record``
    (``None``: dicts). Cached, so msgspec builds one decoder per record type."""
    item = dict[str, Any] if record is None else record
    try:
        union = OffsetPage[item] | KeysetPage[item] | list[item]  # type: ignore[valid-type]
        msgspec.json.Decoder(union)  # unsupported types fail here, before any request
        return union
    except TypeError as exc:
        raise UsageError(f"type must be a type records can be decoded into, got {record!r}"
                         ) from exc


def query_key(action: str, input: Any, filter: Any, sort: Any) -> str:
    """A short fingerprint of what decides the listing's order and content."""
    try:
        blob = msgspec.json.encode([action, input, filter, sort], order="sorted")
    except (TypeError, msgspec.EncodeError) as exc:
        raise UsageError(f"{action}: input/filter/sort cannot be sent as JSON: {exc}") from exc
    return hashlib.blake2b(blob, digest_size=6).hexdigest()


@dataclass(slots=True)
class Walk:
    """The state of one walk over a list action.

    Call ``next_request()`` until it returns None, send those requests, and hand each
    reply to ``receive()`` in the order the requests were handed out.

    Args:
        page_size: records per page to ask for; None sends no ``limit`` (server default).
        limit: stop after this many records; None for all of them.
        resume: a token from an earlier walk of the same listing.
        concurrency: offset windows in flight at once (only once offset pages are seen).
        query: the ``query_key`` of the listing; a token for another one is refused.
    """

    page_size: int | None = 100
    limit: int | None = None
    resume: ResumeToken | None = None
    concurrency: int = 1
    query: str = ""
    _token: ResumeToken = field(init=False)
    _remaining: int | None = field(init=False)
    _kind: PageKind | None = field(init=False, default=None)
    _replies: int = field(init=False, default=0)
    _done: bool = field(init=False, default=False)
    _plan_at: int = field(init=False, default=0)
    _in_flight: deque[PageRequest] = field(init=False, default_factory=deque)

    def __post_init__(self) -> None:
        if self.page_size is not None and (not _is_int(self.page_size) or self.page_size < 1):
            raise UsageError(f"page_size must be an int >= 1 or None, got {self.page_size!r}")
        if self.limit is not None and (not _is_int(self.limit) or self.limit < 0):
            raise UsageError(f"limit must be an int >= 0 or None, got {self.limit!r}")
        if not _is_int(self.concurrency) or self.concurrency < 1:
            raise UsageError(f"concurrency must be an int >= 1, got {self.concurrency!r}")
        token = self.resume or ResumeToken(query=self.query)
        if token.query and self.query and token.query != self.query:
            raise UsageError(
                "this resume token belongs to another listing (a different action, input, "
                "filter or sort)"
            )
        self._token = replace(token, query=self.query or token.query)
        self._remaining = self.limit
        self._done = self.limit == 0
        if token.kind == "offset":
            self._plan_at = token.offset

    @property
    def done(self) -> bool:
        """True once no further request will be handed out."""
        return self._done

    @property
    def token(self) -> ResumeToken:
        """The position right after the last page received."""
        return self._token

    @property
    def in_flight(self) -> int:
        """Requests handed out and not yet received."""
        return len(self._in_flight)

    def next_request(self) -> PageRequest | None:
        """A request that may be sent now, or None (wait for a reply, or the walk is over)."""
        if self._done:
            return None
        if self._kind == "offset" or (self._kind is None and self._token.kind == "offset"):
            request = self._next_offset_window()
        elif self._in_flight:
            return None  # keyset cursors and the first reply are strictly sequential
        else:
            request = self._next_from_token()
        if request is not None:
            self._in_flight.append(request)
        return request

    def receive(self, request: PageRequest, data: Reply) -> Received[Any]:
        """Take the reply to the oldest request in flight; returns what to yield.

        Raises:
            ProtocolError: a reply that contradicts its request (e.g. an offset page for a
                keyset cursor) or that would loop forever (``hasMore`` with no progress).
        """
        if not self._in_flight or self._in_flight[0] != request:
            raise RuntimeError("replies must be received in the order requests were made")
        self._in_flight.popleft()
        first = self._replies == 0
        self._replies += 1
        if isinstance(data, list):
            return self._receive_list(request, data, first)
        if isinstance(data, OffsetPage):
            return self._receive_offset(request, data)
        if isinstance(data, KeysetPage):
            return self._receive_keyset(request, data)
        raise ProtocolError("a list action's data is neither an array nor a page object "
                            f"(got {type(data).__name__})", status=200, path="$.data")

    # -- planning ---------------------------------------------------------------------

    def _request_limit(self, extra: int = 0) -> int | None:
        """Ask for a page, but never for more records than ``limit`` still allows."""
        if self._remaining is None:
            return self.page_size
        want = self._remaining + extra
        return want if self.page_size is None else min(self.page_size, want)

    def _next_from_token(self) -> PageRequest:
        token = self._token
        if token.kind == "keyset":
            return PageRequest(self._request_limit(token.skip), after=token.after,
                               skip=token.skip)
        if token.kind == "list":
            return PageRequest(self._request_limit(token.skip), skip=token.skip)
        # A fresh start. Concurrency needs offset pages, and only sending `offset` makes
        # the server pick them when it supports both types (§5.1 rule 1).
        offset = 0 if self.concurrency > 1 else None
        return PageRequest(self._request_limit(token.skip), offset=offset, skip=token.skip)

    def _next_offset_window(self) -> PageRequest | None:
        # Speculate only once a reply has shown the type and the server's page size.
        if len(self._in_flight) >= (self.concurrency if self._replies else 1):
            return None
        start = self._plan_at
        size = self.page_size
        if self._remaining is not None:
            bound = self._token.offset + self._remaining
            if start >= bound:
                return None
            size = bound - start if size is None else min(size, bound - start)
        elif size is None and self._in_flight:
            return None  # no known window size yet: cannot place the next window
        if size is not None:
            self._plan_at = start + size
        return PageRequest(size, offset=start)

    # -- receiving --------------------------------------------------------------------

    def _take(self, results: list[Any], skip: int) -> tuple[list[Any], bool]:
        """Drop the ``skip`` already yielded, keep what ``limit`` allows; (kept, trimmed)."""
        available = results[skip:] if skip else results
        if self._remaining is None or len(available) <= self._remaining:
            kept = available
        else:
            kept = available[: self._remaining]
        if self._remaining is not None:
            self._remaining -= len(kept)
            if self._remaining == 0:
                self._done = True
        return kept, len(kept) < len(available)

    def _follow_clamp(self, request: PageRequest, server_limit: int | None) -> None:
        """Ask later pages for what the server returned when it clamped (§5.1)."""
        if server_limit is None or server_limit < 1:
            return
        clamped = request.limit is None or server_limit < request.limit
        if clamped and (self.page_size is None or server_limit < self.page_size):
            self.page_size = server_limit

    def _receive_list(self, request: PageRequest, data: list[Any], first: bool) -> Received[Any]:
        if not first:
            raise ProtocolError("a plain array answered a page request in the middle of a "
                                "paginated walk (§5.4)", status=200, path="$.data")
        start = ResumeToken("list", skip=request.skip, query=self.query)
        kept, _ = self._take(data, request.skip)
        self._kind = "list"
        self._done = True
        self._token = start.advanced(len(kept))
        page = Page("list", kept, has_more=False, resume_token=self._token, count=len(data))
        return Received(page, start)

    def _receive_offset(self, request: PageRequest, data: OffsetPage[Any]) -> Received[Any]:
        if request.after is not None or self._kind == "keyset":
            raise ProtocolError("an offset page answered a keyset request (§5.4)",
                                status=200, path="$.data.type")
        sent = request.offset or 0
        if request.offset is not None and data.offset != sent:
            # A server ignoring `offset` would send the same records forever.
            raise ProtocolError(f"an offset page for offset {data.offset} answered a request "
                                f"for offset {sent}", status=200, path="$.data.offset")
        self._kind = "offset"
        results = data.results
        if not results and data.has_more:
            raise ProtocolError("an offset page with no results says hasMore: true; "
                                "the walk would never end", status=200, path="$.data.hasMore")
        start = ResumeToken("offset", offset=sent + request.skip, query=self.query)
        kept, trimmed = self._take(results, request.skip)
        end = start.advanced(len(kept))
        self._token = end
        self._follow_clamp(request, data.limit)
        discard = False
        if not data.has_more or trimmed or self._done:
            self._done = True
            discard = bool(self._in_flight)
        elif self._in_flight and self._in_flight[0].offset != end.offset:
            # A short page (the server clamped, or rows moved): the windows already handed
            # out no longer line up with the records; drop them and plan from here.
            discard = True
        if discard:
            self._in_flight.clear()
            self._plan_at = end.offset
        elif not self._in_flight:
            self._plan_at = end.offset
        page = Page("offset", kept, has_more=data.has_more, resume_token=end, count=data.count,
                    limit=data.limit, offset=start.offset)
        return Received(page, start, discard_in_flight=discard)

    def _receive_keyset(self, request: PageRequest, data: KeysetPage[Any]) -> Received[Any]:
        if (request.offset or 0) > 0 or self._kind == "offset":
            raise ProtocolError("a keyset page answered an offset request (§5.4)",
                                status=200, path="$.data.type")
        self._kind = "keyset"
        start = ResumeToken("keyset", after=request.after, skip=request.skip, query=self.query)
        kept, trimmed = self._take(data.results, request.skip)
        self._follow_clamp(request, data.limit)
        if data.has_more and data.next_page is not None and data.next_page == request.after:
            raise ProtocolError("a keyset page's nextPage repeats the cursor sent; the walk "
                                "would never end", status=200, path="$.data.nextPage")
        if trimmed:
            end = start.advanced(len(kept))
            self._done = True
        elif data.next_page is not None:
            end = ResumeToken("keyset", after=data.next_page, query=self.query)
        else:  # an empty page keeps the position it was asked for
            end = start.advanced(len(kept))
        self._token = end
        if not data.has_more or data.next_page is None:
            self._done = True
        page = Page("keyset", kept, has_more=data.has_more, resume_token=end, count=data.count,
                    limit=data.limit, after=data.after, next_page=data.next_page,
                    previous_page=data.previous_page)
        return Received(page, start)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)

