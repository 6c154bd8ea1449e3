"""``resume_token`` is exact after every record, mid-page and at page ends.

The iterator reads how far the caller got from the page's list iterator when the token is
asked for (no bookkeeping per record); these tests pin the token after each record against
the rule of ``ResumeToken``: the page's start advanced by the records handed out, and the
page's own token once the whole page is out.
"""

from __future__ import annotations

from typing import Any

import pytest

from sippet_async import Contact, ResumeToken, SippetClient
from sippet_async._walk import query_key

from .conftest import SEEDED

pytestmark = pytest.mark.usefixtures("handout")  # each hand-out of records (conftest)

QUERY = query_key("list_contacts", None, None, None)


async def tokens_after_each_record(client: SippetClient, **options: Any
                                   ) -> tuple[list[str], list[ResumeToken]]:
    """Walk with ``async for``; the id of each record and the token right after it."""
    ids: list[str] = []
    tokens: list[ResumeToken] = []
    async with client.iter("list_contacts", fields=["id"], type=Contact, **options) as it:
        if "resume" not in options:
            assert it.resume_token.kind == "start"
        async for contact in it:
            assert isinstance(contact.id, str)
            ids.append(contact.id)
            tokens.append(it.resume_token)
    return ids, tokens


@pytest.mark.parametrize("page_size", [1, 50, 64])
async def test_offset_token_after_every_record(client: SippetClient, page_size: int) -> None:
    """Offset pages: after the i-th record the token is exactly offset i."""
    ids, tokens = await tokens_after_each_record(client, page_size=page_size, concurrency=2)
    assert len(ids) == SEEDED
    assert tokens == [ResumeToken("offset", offset=i, query=QUERY)
                      for i in range(1, SEEDED + 1)]


@pytest.mark.parametrize("page_size", [1, 50, 64])
async def test_keyset_token_after_every_record(client: SippetClient, page_size: int) -> None:
    """Keyset pages: mid-page, the cursor the page was asked with and the records of it
    handed out; at a page's end, the page's own token (its nextPage cursor)."""
    pages = [page async for page in client.iter("list_contacts", fields=["id"],
                                                 page_size=page_size).pages()]
    expected: list[ResumeToken] = []
    cursor: str | None = None
    for page in pages:
        assert page.type == "keyset"
        n = len(page.results)
        expected += [ResumeToken("keyset", after=cursor, skip=j, query=QUERY)
                     for j in range(1, n)]
        expected.append(page.resume_token)
        cursor = page.next_page
    ids, tokens = await tokens_after_each_record(client, page_size=page_size)
    assert len(ids) == SEEDED
    assert tokens == expected


@pytest.mark.parametrize("concurrency", [1, 2])
@pytest.mark.parametrize("stop_at", [1, 37, 50, 51, 249])
async def test_resumed_walk_tokens_match_the_full_walk(
    client: SippetClient, concurrency: int, stop_at: int
) -> None:
    """A walk resumed mid-page (a token with ``skip``) gives, after each record, the same
    token the uninterrupted walk gave after that record; ``__anext__`` and ``async for``
    agree."""
    full_ids, full_tokens = await tokens_after_each_record(client, page_size=50,
                                                           concurrency=concurrency)
    async with client.iter("list_contacts", fields=["id"], type=Contact, page_size=50,
                           concurrency=concurrency) as it:
        for _ in range(stop_at):
            await it.__anext__()
        saved = str(it.resume_token)
    assert ResumeToken.parse(saved) == full_tokens[stop_at - 1]
    ids, tokens = await tokens_after_each_record(client, page_size=50,
                                                 concurrency=concurrency, resume=saved)
    assert ids == full_ids[stop_at:]
    assert tokens == full_tokens[stop_at:]


async def test_limit_mid_page_token(client: SippetClient) -> None:
    """A ``limit`` that ends mid-page: the token after the last record is right after it."""
    ids, tokens = await tokens_after_each_record(client, page_size=50, limit=73,
                                                 concurrency=2)
    assert len(ids) == 73
    assert tokens[-1] == ResumeToken("offset", offset=73, query=QUERY)


async def test_break_then_continue_keeps_the_position(client: SippetClient) -> None:
    """Leaving ``async for`` with ``break`` and starting another loop over the same
    iterator continues with the next record, and the token follows."""
    async with client.iter("list_contacts", fields=["id"], page_size=50,
                           concurrency=2) as it:
        first = []
        async for record in it:
            first.append(record["id"])
            if len(first) == 30:
                break
        assert it.resume_token == ResumeToken("offset", offset=30, query=QUERY)
        rest = [record["id"] async for record in it]
    assert len(first) + len(rest) == SEEDED
    assert len(set(first + rest)) == SEEDED
    assert it.resume_token == ResumeToken("offset", offset=SEEDED, query=QUERY)
