"""client.iter against FakeSippet over real 127.0.0.1 HTTP: every page type, exactly once."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime

import msgspec
import pytest

from sippet_async import (
    Call,
    Contact,
    InvalidInputError,
    Page,
    ProtocolError,
    ResumeToken,
    SippetClient,
    UsageError,
)
from sippet_async.testing import FakeSippet, Reply

from .conftest import KEY, SEEDED, page_requests, page_tasks

pytestmark = pytest.mark.usefixtures("handout")  # each hand-out of records (conftest)


def ids(server: FakeSippet) -> list[str]:
    """Contact ids in the server's default order (insertedAt, then id)."""
    rows = sorted(server.contacts, key=lambda c: (c["insertedAt"], c["id"]))
    return [c["id"] for c in rows]


async def test_keyset_walk_yields_every_record_once_in_order(
    client: SippetClient, server: FakeSippet
) -> None:
    """The fake answers keyset pages by default: all records, in order, 3 pages of 100."""
    got = [c["id"] async for c in client.iter("list_contacts", fields=["id"])]
    assert got == ids(server)
    assert [p.get("limit") for p in page_requests(server)] == [100, 100, 100]
    assert "offset" not in page_requests(server)[0]


async def test_keyset_cursors_pass_through_untouched(
    client: SippetClient, server: FakeSippet
) -> None:
    """Each request's ``after`` is byte for byte the previous page's ``nextPage``."""
    pages = [p async for p in client.iter("list_contacts", fields=["id"], page_size=60).pages()]
    assert [p.type for p in pages] == ["keyset"] * 5
    sent = [p.get("after") for p in page_requests(server)]
    assert sent == [None] + [p.next_page for p in pages[:-1]]
    cursors = "".join(c for c in sent if c)
    assert {"+", "/", "="} <= set(cursors)  # the fake's cursors carry all three (§5.3)
    for request in server.requests[1:]:
        assert request.json["page"]["after"].encode() in request.body


async def test_offset_walk_advances_by_results(client: SippetClient, server: FakeSippet) -> None:
    """Starting from an offset token: offset pages, offset += len(results) while hasMore."""
    it = client.iter("list_contacts", fields=["id"], page_size=100,
                     resume=ResumeToken("offset", offset=0))
    got = [c["id"] async for c in it]
    assert got == ids(server)
    assert page_requests(server) == [{"limit": 100, "offset": o} for o in (0, 100, 200)]
    assert it.resume_token.offset == SEEDED


async def test_plain_list_is_yielded_whole(client: SippetClient, server: FakeSippet) -> None:
    """list_calls answers a plain array: yield it and stop after one request."""
    for n in range(7):
        await client.run("create_call", input={"toE164": f"+1555123{n:04d}"}, fields=["id"])
    server.reset_records()
    pages = [p async for p in client.iter("list_calls", fields=["id", "status"]).pages()]
    assert [p.type for p in pages] == ["list"]
    assert [c["id"] for c in pages[0].results] == [c["id"] for c in server.calls]
    assert len(server.requests) == 1


async def test_empty_result_yields_nothing(client: SippetClient, server: FakeSippet) -> None:
    """A filter matching nothing: no records, one request, one empty page."""
    none = {"fullName": {"eq": "Nobody At All"}}
    assert [c async for c in client.iter("list_contacts", fields=["id"], filter=none)] == []
    pages = [p async for p in client.iter("list_contacts", fields=["id"], filter=none).pages()]
    assert len(pages) == 1
    assert pages[0].results == []
    assert pages[0].has_more is False
    assert len(server.requests) == 2


async def test_ten_thousand_records_exactly_once() -> None:
    """10,000 records in pages of 500: every id exactly once, in the server's order."""
    async with FakeSippet(api_key=KEY, seed_contacts=10_000) as server, \
            SippetClient(KEY, base_url=server.url) as client:
        got = [c["id"] async for c in client.iter("list_contacts", fields=["id"],
                                                  page_size=500)]
        assert len(got) == 10_000
        assert len(set(got)) == 10_000
        assert got == ids(server)
        assert len(server.requests) == 20


async def test_parallel_offset_walk_exactly_once_in_order() -> None:
    """concurrency=8 over 10,000 records: offset windows, exactly once and in order."""
    async with FakeSippet(api_key=KEY, seed_contacts=10_000) as server, \
            SippetClient(KEY, base_url=server.url) as client:
        it = client.iter("list_contacts", fields=["id"], page_size=300, concurrency=8)
        got = [c["id"] async for c in it]
        assert got == ids(server)
        offsets = [p["offset"] for p in page_requests(server)]
        assert offsets[0] == 0
        assert set(range(0, 10_000, 300)) <= set(offsets)
        # speculation stops within one round of windows past the end
        assert len(offsets) <= len(range(0, 10_000, 300)) + 8


async def test_records_inserted_during_a_keyset_walk_never_duplicate(
    client: SippetClient, server: FakeSippet
) -> None:
    """Contacts created between pages (before and after the cursor): no id twice, every
    original once."""
    before = set(ids(server))
    names = itertools.cycle(["Aaron Early", "Zed Late", "Mia Middle", "Abe First", "Zoe Last"])
    seen: list[str] = []
    async for page in client.iter("list_contacts", fields=["id", "fullName"], sort="fullName",
                                  page_size=40).pages():
        seen.extend(c["id"] for c in page.results)
        for _ in range(3):
            await client.run("create_contact", fields=["id"],
                             input={"fullName": next(names), "phoneE164": "+15550009999"})
    assert len(seen) == len(set(seen))
    assert before <= set(seen)


async def test_break_after_first_record_makes_at_most_one_more_request(
    client: SippetClient, server: FakeSippet
) -> None:
    """break + aclose: at most the one prefetched page more, and no page task left over."""
    it = client.iter("list_contacts", fields=["id"], page_size=10)
    async for _ in it:
        break
    await it.aclose()
    assert len(page_requests(server)) <= 2
    assert page_tasks() == []


async def test_break_without_aclose_cancels_the_prefetch(
    client: SippetClient, server: FakeSippet
) -> None:
    """A bare ``break``: the freed iterator's stream is finalized and the prefetch cancelled."""
    server.latency = 0.5  # the prefetch is certainly still in flight at the break
    async for _ in client.iter("list_contacts", fields=["id"], page_size=10):
        prefetch = page_tasks()
        break
    assert len(prefetch) == 1
    await asyncio.wait(prefetch)  # ends by cancellation, not by its 0.5 s reply
    assert prefetch[0].cancelled()
    assert len(page_requests(server)) <= 2


async def test_exception_in_the_caller_cancels_the_prefetch(
    client: SippetClient, server: FakeSippet
) -> None:
    """An exception inside ``async with`` closes the walk: the prefetch is cancelled."""
    server.latency = 0.5
    prefetch: list[asyncio.Task[object]] = []

    async def consume() -> None:
        async with client.iter("list_contacts", fields=["id"], page_size=10) as it:
            async for _ in it:
                prefetch.extend(page_tasks())
                raise RuntimeError("caller failed")

    with pytest.raises(RuntimeError, match="caller failed"):
        await consume()
    assert len(prefetch) == 1
    assert prefetch[0].cancelled()


@pytest.mark.parametrize("concurrency", [1, 3])
@pytest.mark.parametrize("stop_at", [0, 1, 37, 100, 149, 250])
async def test_resume_token_continues_exactly_where_it_stopped(
    client: SippetClient, server: FakeSippet, concurrency: int, stop_at: int
) -> None:
    """Stop after k records (mid-page too); a new walk from the saved token yields the rest."""
    everything = ids(server)
    it = client.iter("list_contacts", fields=["id"], page_size=50, sort="insertedAt",
                     concurrency=concurrency)
    first: list[str] = []
    async with it:
        while len(first) < stop_at:
            first.append((await it.__anext__())["id"])
    saved = str(it.resume_token)  # e.g. written to disk
    rest = [c["id"] async for c in client.iter("list_contacts", fields=["id"], page_size=50,
                                               sort="insertedAt", concurrency=concurrency,
                                               resume=saved)]
    assert first + rest == everything


async def test_resume_token_of_another_listing_is_refused(client: SippetClient) -> None:
    """A token saved for one sort order is refused for another, before any request."""
    it = client.iter("list_contacts", fields=["id"], sort="fullName", limit=5)
    _ = [c async for c in it]
    with pytest.raises(UsageError, match="another listing"):
        client.iter("list_contacts", fields=["id"], sort="-fullName", resume=it.resume_token)


async def test_limit_shrinks_the_last_request(client: SippetClient, server: FakeSippet) -> None:
    """limit=230, page_size=100: requests ask for 100, 100, 30 and nothing more."""
    got = [c async for c in client.iter("list_contacts", fields=["id"], limit=230)]
    assert len(got) == 230
    assert [p["limit"] for p in page_requests(server)] == [100, 100, 30]


async def test_server_clamp_is_followed(client: SippetClient, server: FakeSippet) -> None:
    """page_size above the server's max (500): later requests ask for what it returned."""
    async with FakeSippet(api_key=KEY, seed_contacts=1200) as big, \
            SippetClient(KEY, base_url=big.url) as big_client:
        got = [c async for c in big_client.iter("list_contacts", fields=["id"], page_size=2000)]
        assert len(got) == 1200
        assert [p["limit"] for p in page_requests(big)] == [2000, 500, 500]


async def test_typed_records_decode_into_structs(client: SippetClient) -> None:
    """type=Contact: Structs with snake_case attributes; unselected fields stay UNSET."""
    contacts = [c async for c in client.iter("list_contacts", fields=["id", "fullName",
                                                                     "insertedAt"],
                                             type=Contact, limit=20)]
    assert len(contacts) == 20
    assert all(isinstance(c, Contact) for c in contacts)
    assert isinstance(contacts[0].inserted_at, datetime)
    assert isinstance(contacts[0].full_name, str)
    assert contacts[0].email is msgspec.UNSET
    assert b"email" not in msgspec.json.encode(contacts[0])
    assert b"fullName" in msgspec.json.encode(contacts[0])


async def test_typed_plain_list(client: SippetClient) -> None:
    """type=Call over a plain array reply."""
    await client.run("create_call", input={"toE164": "+15551230000"}, fields=["id"])
    calls = [c async for c in client.iter("list_calls", fields=["id", "toE164", "status"],
                                          type=Call)]
    assert len(calls) == 1
    assert calls[0].to_e164 == "+15551230000"
    assert calls[0].status == "queued"
    assert calls[0].inserted_at is msgspec.UNSET


async def test_pages_carry_metadata_and_resume_tokens(client: SippetClient) -> None:
    """.pages(): Page objects with type, has_more and a token to continue after each."""
    pages: list[Page[dict[str, object]]] = []
    async for page in client.iter("list_contacts", fields=["id"], page_size=100,
                                  concurrency=2).pages():
        pages.append(page)
    assert [p.type for p in pages] == ["offset"] * 3
    assert [p.offset for p in pages] == [0, 100, 200]
    assert [p.has_more for p in pages] == [True, True, False]
    assert [p.resume_token.offset for p in pages] == [100, 200, 250]


async def test_records_and_pages_cannot_be_mixed(client: SippetClient) -> None:
    """One iterator is consumed either by record or by page."""
    async with client.iter("list_contacts", fields=["id"]) as it:
        await it.__anext__()
        with pytest.raises(UsageError, match="not both"):
            it.pages()


async def test_server_error_mid_walk_is_raised_typed(client: SippetClient,
                                                     server: FakeSippet) -> None:
    """A success:false reply to the second page raises its RpcError after page one."""
    error = {"type": "invalid_keyset", "message": "invalid keyset", "shortMessage": "Invalid",
             "vars": {}, "fields": [], "path": []}
    server.push_reply(Reply(status=200, body=msgspec.json.encode({"success": True, "data": {
        "type": "keyset", "results": [{"id": "x"}], "hasMore": True, "nextPage": "c"}})))
    server.push_reply(Reply(status=200, body=msgspec.json.encode(
        {"success": False, "errors": [error]})))
    got: list[object] = []

    async def consume() -> None:
        async for contact in client.iter("list_contacts", fields=["id"]):
            got.append(contact)

    with pytest.raises(InvalidInputError, match="invalid_keyset"):
        await consume()
    assert got == [{"id": "x"}]


async def test_malformed_page_is_a_protocol_error(client: SippetClient,
                                                  server: FakeSippet) -> None:
    """A page object with an unknown ``type`` is a ProtocolError naming the path."""
    server.push_reply(Reply(status=200, body=b'{"success": true, "data": {"type": "cursor",'
                                             b' "results": []}}'))
    with pytest.raises(ProtocolError) as caught:
        _ = [c async for c in client.iter("list_contacts", fields=["id"])]
    assert caught.value.path.startswith("$.data")


@pytest.mark.parametrize(
    ("options", "word"),
    [({"page_size": 0}, "page_size"), ({"limit": -1}, "limit"), ({"concurrency": 0},
                                                                 "concurrency"),
     ({"resume": "nope"}, "token"), ({"resume": 5}, "resume"), ({"type": 42}, "type")],
)
async def test_bad_arguments_raise_usage_errors_before_io(
    client: SippetClient, server: FakeSippet, options: dict[str, object], word: str
) -> None:
    """Bad iter() arguments raise UsageError naming the argument, with no request sent."""
    with pytest.raises(UsageError, match=word):
        client.iter("list_contacts", fields=["id"], **options)  # type: ignore[call-overload]
    assert server.requests == []
