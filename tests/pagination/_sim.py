"""A pure, in-memory list action that answers ``_paging`` requests like docs/protocol.md §5.

It is written from the protocol text, not from the fake server, so the rules and this
simulation cannot share one misunderstanding. Records are ints, sorted ascending; cursors
carry ``+``, ``/`` and ``=`` like real Base64 cursors (§5.3).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any, Literal

from sippet_async._models import KeysetPage, OffsetPage
from sippet_async._walk import PageRequest, Received, ResumeToken, Walk

Mode = Literal["offset", "keyset", "list", "both"]


def cursor(record: int) -> str:
    return f"+/{record}=="


def uncursor(text: str) -> int:
    assert text.startswith("+/"), text
    assert text.endswith("=="), text
    return int(text[2:-2])


@dataclass
class SimServer:
    """``mode``: the page type it answers (``both``: offset when ``offset`` is sent, else
    keyset, like the fake server); ``max_page_size`` clamps ``limit`` silently (§5.1)."""

    records: list[int]
    mode: Mode = "both"
    max_page_size: int = 500
    default_limit: int = 100
    served: list[PageRequest] = field(default_factory=list)
    returned: int = 0  # records sent back in all answers

    def answer(self, request: PageRequest) -> Any:
        self.served.append(request)
        if self.mode == "list":
            self.returned += len(self.records)
            return list(self.records)
        limit = min(request.limit or self.default_limit, self.max_page_size)
        offset_mode = self.mode == "offset" or (self.mode == "both" and request.offset is not None)
        if offset_mode:
            start = request.offset or 0
            chunk = self.records[start : start + limit]
            self.returned += len(chunk)
            return OffsetPage(results=chunk, has_more=start + len(chunk) < len(self.records),
                              limit=limit, offset=start)
        low = 0 if request.after is None else bisect.bisect_right(self.records,
                                                                   uncursor(request.after))
        chunk = self.records[low : low + limit]
        self.returned += len(chunk)
        return KeysetPage(
            results=chunk, has_more=low + limit < len(self.records), limit=limit,
            after=request.after,
            previous_page=cursor(chunk[0]) if chunk else None,
            next_page=cursor(chunk[-1]) if chunk else None,
        )

    def insert(self, record: int) -> None:
        bisect.insort(self.records, record)


@dataclass
class Trace:
    """What a walk yielded: records in order, each page as received."""

    records: list[int] = field(default_factory=list)
    pages: list[Received[int]] = field(default_factory=list)
    requests: int = 0
    peak_in_flight: int = 0

    def token_at(self, position: int, initial: ResumeToken) -> ResumeToken:
        """The iterator's resume token after ``position`` records were handed out."""
        token, seen = initial, 0
        for received in self.pages:
            size = len(received.page.results)
            if seen + size > position:
                return received.start.advanced(position - seen)
            seen += size
            token = received.page.resume_token
        return token


def drive(walk: Walk, server: SimServer, *, between_pages: Any = None) -> Trace:
    """Run ``walk`` to the end: hand out every request it allows, answer them in order,
    feed the replies back in order, drop the rest when told to (like ``_pagination``)."""
    trace = Trace()
    in_flight: list[PageRequest] = []
    answers: dict[int, Any] = {}
    while True:
        while (request := walk.next_request()) is not None:
            in_flight.append(request)
            trace.requests += 1
        trace.peak_in_flight = max(trace.peak_in_flight, len(in_flight))
        if not in_flight:
            return trace
        request = in_flight.pop(0)
        key = id(request)
        data = answers.pop(key) if key in answers else server.answer(request)
        for other in in_flight:  # the others were "sent" meanwhile: answer them now
            if id(other) not in answers:
                answers[id(other)] = server.answer(other)
        received = walk.receive(request, data)
        if received.discard_in_flight:
            in_flight.clear()
            answers.clear()
        trace.pages.append(received)
        trace.records.extend(received.page.results)
        if between_pages is not None:
            between_pages(server, received)
