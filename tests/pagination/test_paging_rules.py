"""Property tests of the pure page-walking rules (``_paging.Walk``) over a simulated server."""

from __future__ import annotations

import ast
import importlib.util
import math
import pathlib
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sippet_async._errors import ProtocolError, UsageError
from sippet_async._models import KeysetPage, OffsetPage
from sippet_async._walk import PageRequest, ResumeToken, Walk, page_type, query_key

from ._sim import Mode, SimServer, cursor, drive

MODES: tuple[Mode, ...] = ("offset", "keyset", "list", "both")

totals = st.integers(min_value=0, max_value=400)
page_sizes = st.one_of(st.none(), st.integers(min_value=1, max_value=60))
clamps = st.integers(min_value=1, max_value=60)
modes = st.sampled_from(MODES)
limits = st.one_of(st.none(), st.integers(min_value=0, max_value=450))
concurrencies = st.integers(min_value=1, max_value=6)


def records(total: int) -> list[int]:
    return [2 * i for i in range(total)]  # even: room for odd inserts between them


@settings(max_examples=400, deadline=None)
@given(total=totals, page_size=page_sizes, clamp=clamps, mode=modes, limit=limits,
       concurrency=concurrencies)
def test_every_record_exactly_once_in_order(total: int, page_size: int | None, clamp: int,
                                             mode: Mode, limit: int | None,
                                             concurrency: int) -> None:
    """Any count, page size, clamp, page type and concurrency: records[:limit], in order."""
    data = records(total)
    server = SimServer(list(data), mode=mode, max_page_size=clamp)
    walk = Walk(page_size=page_size, limit=limit, concurrency=concurrency)
    trace = drive(walk, server)
    expected = data if limit is None else data[:limit]
    assert trace.records == expected
    assert walk.done


@settings(max_examples=300, deadline=None)
@given(total=totals, page_size=st.integers(min_value=1, max_value=60), clamp=clamps,
       mode=st.sampled_from(("offset", "keyset", "both")), limit=limits)
def test_limit_fetches_no_unneeded_page(total: int, page_size: int, clamp: int, mode: Mode,
                                        limit: int | None) -> None:
    """Sequentially, the server sends back exactly the records yielded, in the fewest pages."""
    server = SimServer(records(total), mode=mode, max_page_size=clamp)
    walk = Walk(page_size=page_size, limit=limit)
    trace = drive(walk, server)
    wanted = total if limit is None else min(limit, total)
    assert len(trace.records) == wanted
    assert server.returned == wanted
    if limit == 0:
        assert trace.requests == 0
    else:
        effective = min(page_size, clamp)
        # The first request may ask for more than the clamp: it teaches the page size.
        assert trace.requests == max(1, math.ceil(wanted / effective))
    asked = [request.limit for request in server.served]
    if limit is not None:
        assert all(size is not None and size <= limit for size in asked)


@settings(max_examples=300, deadline=None)
@given(total=totals, page_size=page_sizes, clamp=clamps, mode=modes,
       concurrency=concurrencies, data=st.data())
def test_resume_token_continues_exactly_where_it_stopped(
    total: int, page_size: int | None, clamp: int, mode: Mode, concurrency: int,
    data: st.DataObject,
) -> None:
    """Stop after any k records; a walk resumed from the token yields records[k:] exactly."""
    everything = records(total)
    first = drive(Walk(page_size=page_size, concurrency=concurrency, query="q"),
                  SimServer(list(everything), mode=mode, max_page_size=clamp))
    position = data.draw(st.integers(min_value=0, max_value=total), label="position")
    token = first.token_at(position, ResumeToken(query="q"))
    text = str(token)
    assert ResumeToken.parse(text) == token
    resumed = drive(Walk(page_size=page_size, concurrency=concurrency, resume=token, query="q"),
                    SimServer(list(everything), mode=mode, max_page_size=clamp))
    assert resumed.records == everything[position:]


@settings(max_examples=300, deadline=None)
@given(total=st.integers(min_value=0, max_value=200), page_size=st.integers(1, 30),
       inserts=st.lists(st.integers(min_value=-1, max_value=401), max_size=40,
                      unique=True))
def test_keyset_inserts_during_a_walk_never_duplicate(total: int, page_size: int,
                                                      inserts: list[int]) -> None:
    """Rows inserted anywhere between keyset pages: no duplicate, every original once."""
    original = records(total)
    pending = [2 * value + 1 for value in inserts]  # odd: new rows between the originals

    def insert_some(server: SimServer, _received: object) -> None:
        for _ in range(2):
            if pending:
                server.insert(pending.pop())

    server = SimServer(list(original), mode="keyset")
    trace = drive(Walk(page_size=page_size), server, between_pages=insert_some)
    assert len(trace.records) == len(set(trace.records))
    assert [r for r in trace.records if r % 2 == 0] == original
    assert trace.records == sorted(trace.records)


@settings(max_examples=200, deadline=None)
@given(total=st.integers(min_value=0, max_value=300), page_size=st.integers(1, 40),
       clamp=clamps, concurrency=st.integers(2, 8))
def test_concurrency_keeps_windows_in_flight_and_discards_past_the_end(
    total: int, page_size: int, clamp: int, concurrency: int
) -> None:
    """Offset windows: never more than N in flight, and nothing after the last page used."""
    server = SimServer(records(total), mode="both", max_page_size=clamp)
    trace = drive(Walk(page_size=page_size, concurrency=concurrency), server)
    assert trace.records == records(total)
    assert trace.peak_in_flight <= concurrency
    assert server.served[0].offset == 0  # the first request forces offset pages


def test_first_request_sends_offset_zero_only_for_concurrency() -> None:
    """concurrency=1 lets the server choose the page type; concurrency>1 sends offset 0."""
    assert Walk(page_size=10).next_request() == PageRequest(10)
    assert Walk(page_size=10, concurrency=3).next_request() == PageRequest(10, offset=0)


def test_keyset_reply_with_concurrency_falls_back_to_sequential() -> None:
    """A keyset reply to the offset-0 request: one request at a time from then on."""
    walk = Walk(page_size=2, concurrency=4)
    server = SimServer(records(9), mode="keyset")
    first = walk.next_request()
    assert first is not None
    walk.receive(first, server.answer(first))
    second = walk.next_request()
    assert second is not None
    assert second.after == cursor(2)
    assert walk.next_request() is None  # not a second keyset request in flight
    walk.receive(second, server.answer(second))
    assert drive(walk, server).records == records(9)[4:]


def test_clamped_server_is_followed() -> None:
    """A reply whose limit is below the one asked makes later requests ask for that."""
    server = SimServer(records(25), mode="keyset", max_page_size=7)
    drive(Walk(page_size=100), server)
    assert [r.limit for r in server.served] == [100, 7, 7, 7]


def test_page_size_none_sends_no_limit_then_follows_the_server() -> None:
    """page_size=None sends no limit at first and then the limit the server used."""
    server = SimServer(records(25), mode="keyset", default_limit=10)
    drive(Walk(page_size=None), server)
    assert [r.limit for r in server.served] == [None, 10, 10]
    assert server.served[0].wire() == {}


def test_short_offset_page_mid_walk_replans_the_windows() -> None:
    """A page shorter than its window with hasMore: later windows are dropped, no gap."""
    walk = Walk(page_size=10, concurrency=3)
    first = walk.next_request()
    assert first is not None
    walk.receive(first, OffsetPage(results=list(range(10)), has_more=True, limit=10))
    second, third = walk.next_request(), walk.next_request()
    assert second is not None
    assert third is not None
    assert (second.offset, third.offset) == (10, 20)
    got = walk.receive(second, OffsetPage(results=[10, 11, 12], has_more=True, limit=3,
                                          offset=10))
    assert got.discard_in_flight
    following = walk.next_request()
    assert following is not None
    assert following.offset == 13


@pytest.mark.parametrize(
    ("request_", "reply", "message"),
    [
        (PageRequest(10, offset=0), OffsetPage(results=[], has_more=True), "never end"),
        (PageRequest(10, offset=20), OffsetPage(results=[1], offset=0), "for offset 20"),
        (PageRequest(10, after="+/4=="), KeysetPage(results=[1], has_more=True,
                                                    next_page="+/4=="), "never end"),
        (PageRequest(10, after="+/4=="), OffsetPage(results=[1]), "keyset request"),
        (PageRequest(10, offset=20), KeysetPage(results=[1]), "offset request"),
        (PageRequest(10), None, "neither an array nor a page"),
        (PageRequest(10), {"results": []}, "neither an array nor a page"),
    ],
)
def test_contradictory_replies_are_protocol_errors(request_: PageRequest, reply: object,
                                                   message: str) -> None:
    """Replies that contradict their request, or would loop forever, raise ProtocolError."""
    walk = Walk(page_size=10)
    walk._in_flight.append(request_)  # as if handed out
    with pytest.raises(ProtocolError, match=message):
        walk.receive(request_, reply)  # type: ignore[arg-type]


def test_plain_array_after_a_page_is_a_protocol_error() -> None:
    """Only the first reply may be a plain array (§5.4)."""
    walk = Walk(page_size=1)
    first = walk.next_request()
    assert first is not None
    walk.receive(first, KeysetPage(results=[0], has_more=True, next_page=cursor(0)))
    second = walk.next_request()
    assert second is not None
    with pytest.raises(ProtocolError, match="plain array"):
        walk.receive(second, [1, 2])


@pytest.mark.parametrize(
    "options",
    [
        {"page_size": 0}, {"page_size": -1}, {"page_size": True}, {"page_size": "10"},
        {"limit": -1}, {"limit": 1.5}, {"concurrency": 0}, {"concurrency": None},
    ],
)
def test_bad_walk_arguments_are_usage_errors(options: dict[str, object]) -> None:
    """Bad numbers are refused before any request, naming the argument."""
    with pytest.raises(UsageError, match=next(iter(options))):
        Walk(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    ["", "offset:10", "sprt1.", "sprt1.!!!", "sprt1.WyJub3BlIl0",
     str(ResumeToken("offset", offset=5)).replace("sprt1.", "sprt2.")],
)
def test_malformed_tokens_are_usage_errors(text: str) -> None:
    """A string that is not a resume token is refused clearly."""
    with pytest.raises(UsageError, match="token"):
        ResumeToken.parse(text)


def test_token_of_another_listing_is_refused() -> None:
    """A token minted for another action/filter/sort is not silently applied."""
    token = ResumeToken("offset", offset=5, query=query_key("list_contacts", None, None, "id"))
    other = query_key("list_contacts", None, None, "-id")
    with pytest.raises(UsageError, match="another listing"):
        Walk(resume=token, query=other)


def test_query_key_ignores_key_order() -> None:
    """The fingerprint depends on content, not on dict ordering."""
    assert query_key("a", None, {"x": 1, "y": 2}, None) == query_key("a", None, {"y": 2, "x": 1},
                                                                     None)


def test_page_type_is_built_once_per_record_type() -> None:
    """One cached union (hence one msgspec decoder) per record type."""
    assert page_type(int) is page_type(int)
    with pytest.raises(UsageError, match="type"):
        page_type(42)


def _imports(module: str) -> set[str]:
    """Modules imported by ``module`` and, transitively, by the sippet_async ones it uses."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        spec = importlib.util.find_spec(name)
        assert spec is not None
        assert spec.origin is not None
        tree = ast.parse(pathlib.Path(spec.origin).read_text())
        for node in ast.walk(tree):
            found = []
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                found = [node.module]
            for imported in found:
                if imported not in seen:
                    seen.add(imported)
                    if imported.startswith("sippet_async."):
                        todo.append(imported)
    return seen


def test_paging_is_sans_io() -> None:
    """_paging (and what it imports from sippet_async) uses no network code and no await."""
    imported = _imports("sippet_async._walk")
    assert not {m.split(".")[0] for m in imported} & {"aiohttp", "asyncio"}, imported
    source = pathlib.Path(sys.modules["sippet_async._walk"].__file__ or "").read_text()
    tree = ast.parse(source)
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Await | ast.AsyncFunctionDef)]
