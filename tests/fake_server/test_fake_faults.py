"""Faults, rate limiting, latency, idempotency replays and scripted replies."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from sippet_async.testing import FakeSippet, Faults, Reply

from ._support import API_KEY, SEEDED, Post, Rpc

LIST = {"action": "list_contacts", "fields": ["id"]}
ADA = {"fullName": "Ada", "phoneE164": "+15550001234"}
CREATE = {"action": "create_contact", "input": ADA, "fields": ["id"]}


async def statuses(post: Post, server: FakeSippet, count: int) -> list[int | None]:
    """Send `count` list requests one after another; None stands for a dropped connection."""
    seen: list[int | None] = []
    for _ in range(count):
        try:
            seen.append((await post(LIST, target=server)).status)
        except aiohttp.ClientConnectionError:
            seen.append(None)
    return seen


async def test_same_seed_same_fault_sequence(post: Post) -> None:
    """Fault draws come from Random(seed): same seed and order, same sequence; not another."""
    faults = Faults(p_500=0.25, p_503=0.25, p_429=0.1, p_reset_before=0.1)
    runs = []
    for seed in (7, 7, 8):
        async with FakeSippet(API_KEY, faults=faults, seed=seed) as fake:
            runs.append(await statuses(post, fake, 40))
            assert [r.fault for r in fake.requests].count(None) == runs[-1].count(200)
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert {500, 503, 429, None, 200} == set(runs[0])


async def test_http_500_is_html_and_not_executed(server: FakeSippet, post: Post) -> None:
    """p_500 answers HTML 500 before executing."""
    server.faults = Faults(p_500=1.0)
    answer = await post(CREATE)
    assert answer.status == 500
    assert answer.headers["Content-Type"].startswith("text/html")
    assert answer.body.startswith(b"<html>")
    (record,) = server.requests
    assert (record.status, record.executed, record.fault) == (500, False, "http_500")
    assert len(server.contacts) == SEEDED


async def test_http_503_and_429_carry_retry_after(server: FakeSippet, post: Post) -> None:
    """p_503 and p_429 send Retry-After; RateLimit-* hints only when asked for."""
    server.faults = Faults(p_503=1.0, retry_after=2.5)
    answer = await post(CREATE)
    assert (answer.status, answer.headers["Retry-After"]) == (503, "2.5")
    server.faults = Faults(p_429=1.0)
    answer = await post(LIST)
    assert (answer.status, answer.headers["Retry-After"]) == (429, "1")
    assert "RateLimit-Remaining" not in answer.headers
    server.faults = Faults(p_429=1.0, retry_after=3, rate_limit_headers=True)
    answer = await post(LIST)
    assert (answer.headers["RateLimit-Remaining"], answer.headers["RateLimit-Reset"]) == ("0", "3")
    assert [r.fault for r in server.requests] == ["http_503", "http_429", "http_429"]
    assert not any(r.executed for r in server.requests)


async def test_reset_before_drops_the_connection_without_executing(
    server: FakeSippet, post: Post
) -> None:
    """p_reset_before aborts the connection and nothing is stored."""
    server.faults = Faults(p_reset_before=1.0)
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(CREATE)
    (record,) = server.requests
    assert (record.status, record.executed, record.fault) == (None, False, "reset_before")
    assert len(server.contacts) == SEEDED


async def test_lost_after_commit_executes_but_never_answers(server: FakeSippet, post: Post) -> None:
    """p_lost_after_commit stores the record, then drops the connection unanswered."""
    server.faults = Faults(p_lost_after_commit=1.0)
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(CREATE)
    (record,) = server.requests
    assert (record.status, record.executed, record.fault) == (None, True, "lost_after_commit")
    assert len(server.contacts) == SEEDED + 1


async def test_only_actions_and_paths_limit_faults(
    server: FakeSippet, post: Post, session: aiohttp.ClientSession
) -> None:
    """Faults hit only the listed actions, only the RPC paths, and never a 401."""
    server.faults = Faults(p_500=1.0, only_actions=frozenset({"create_contact"}))
    assert (await post(LIST)).status == 200
    assert (await post(CREATE)).status == 500
    server.faults = Faults(p_500=1.0)
    async with session.get(f"{server.url}/health") as reply:
        assert reply.status == 404
    assert (await post(LIST, key="wrong")).status == 401


async def test_rolling_window_rate_limit(post: Post) -> None:
    """More than N requests in any rolling second get 429 with the exact wait; rest executes."""
    now = [100.0]
    limited = Faults(rate_limit=3, rate_limit_headers=True)
    async with FakeSippet(API_KEY, faults=limited, clock=lambda: now[0]) as fake:
        burst = await asyncio.gather(*(post(LIST, target=fake) for _ in range(5)))
        assert sorted(a.status for a in burst) == [200, 200, 200, 429, 429]
        rejected = next(a for a in burst if a.status == 429)
        assert rejected.headers["Retry-After"] == "1"
        assert rejected.headers["RateLimit-Limit"] == "3"
        now[0] = 100.4
        answer = await post(LIST, target=fake)
        assert (answer.status, answer.headers["Retry-After"]) == (429, "0.6")
        now[0] = 101.0
        assert (await post(LIST, target=fake)).status == 200
        records = fake.requests
        assert [r.fault for r in records].count("rate_limited") == 3
        assert sum(r.executed for r in records) == 4


async def test_latency_is_added_and_recorded(server: FakeSippet, rpc: Rpc) -> None:
    """server.latency and faults.latency delay handling and are recorded per request."""
    loop = asyncio.get_running_loop()
    server.latency = 0.05
    server.faults = Faults(latency=0.03, only_actions=frozenset({"list_contacts"}))
    started = loop.time()
    await rpc(LIST)
    assert loop.time() - started >= 0.08
    await rpc(CREATE)
    assert [r.latency for r in server.requests] == pytest.approx([0.08, 0.05])


async def test_idempotency_key_ignored_by_default(server: FakeSippet, rpc: Rpc) -> None:
    """By default a repeated Idempotency-Key executes again (as Sippet is assumed to)."""
    for _ in range(2):
        await rpc(CREATE, headers={"Idempotency-Key": "job-1:0"})
    assert len(server.contacts) == SEEDED + 2


async def test_idempotency_key_honoured_replays_first_result(post: Post) -> None:
    """Honouring mode replays the first body for a repeated key, even after a lost reply."""
    async with FakeSippet(API_KEY, honour_idempotency_key=True) as fake:
        fake.faults = Faults(p_lost_after_commit=1.0)
        with pytest.raises(aiohttp.ClientConnectionError):
            await post(CREATE, target=fake, headers={"Idempotency-Key": "k1"})
        fake.faults = None
        again = await post(CREATE, target=fake, headers={"Idempotency-Key": "k1"})
        third = await post(CREATE, target=fake, headers={"Idempotency-Key": "k1"})
        other = await post(CREATE, target=fake, headers={"Idempotency-Key": "k2"})
        assert again.status == 200
        assert again.body == third.body
        assert again.json()["data"]["id"] == fake.contacts[0]["id"]
        assert other.json()["data"]["id"] == fake.contacts[1]["id"]
        assert len(fake.contacts) == 2
        assert [(r.executed, r.replayed) for r in fake.requests] == [
            (True, False),
            (False, True),
            (False, True),
            (True, False),
        ]


async def test_push_reply_is_fifo_across_paths(
    server: FakeSippet, post: Post, session: aiohttp.ClientSession
) -> None:
    """Scripted replies answer the next requests, any path, in order, before auth."""
    server.push_reply(Reply(status=503, body=b"<html>down</html>", headers={"Retry-After": "2"}))
    server.push_reply(Reply(status=418, body=b"teapot", headers={"Content-Type": "text/plain"}))
    assert server.pending_replies == 2
    first = await post(LIST, key=None)
    assert (first.status, first.headers["Retry-After"], first.body) == (
        503,
        "2",
        b"<html>down</html>",
    )
    assert first.headers["Content-Type"].startswith("text/html")
    async with session.get(f"{server.url}/anything") as reply:
        assert (reply.status, await reply.text()) == (418, "teapot")
    assert (await post(LIST)).status == 200
    assert [(r.status, r.fault, r.executed) for r in server.requests] == [
        (503, "scripted", False),
        (418, "scripted", False),
        (200, None, True),
    ]


async def test_push_reply_execute_runs_the_action_first(server: FakeSippet, post: Post) -> None:
    """execute=True stores the record, then sends the scripted reply instead."""
    server.push_reply(Reply(status=502, execute=True))
    assert (await post(CREATE)).status == 502
    assert len(server.contacts) == SEEDED + 1
    assert server.requests[0].executed is True


async def test_push_reply_redirect_is_sent_as_is(server: FakeSippet, post: Post) -> None:
    """A scripted 307 with Location reaches the client untouched."""
    server.push_reply(Reply(status=307, headers={"Location": "http://example.invalid/rpc"}))
    answer = await post(LIST)
    assert (answer.status, answer.headers["Location"]) == (307, "http://example.invalid/rpc")


async def test_push_reply_reset(server: FakeSippet, post: Post) -> None:
    """reset=True closes the connection without a reply."""
    server.push_reply(Reply(reset=True, execute=True))
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(CREATE)
    assert (server.requests[0].status, server.requests[0].executed) == (None, True)


async def test_push_reply_streams_chunked_junk(
    server: FakeSippet, session: aiohttp.ClientSession
) -> None:
    """stream_bytes sends exactly N bytes, chunked, no Content-Length, JSON-looking prefix."""
    server.push_reply(Reply(stream_bytes=300_001))
    async with session.post(f"{server.url}/rpc/public/run", json=LIST) as reply:
        body = await reply.read()
        assert "Content-Length" not in reply.headers
        assert reply.headers["Transfer-Encoding"] == "chunked"
    assert len(body) == 300_001
    assert body.startswith(b'{"success":true,"data":"xxx')


async def test_huge_stream_can_be_abandoned(
    server: FakeSippet, session: aiohttp.ClientSession, rpc: Rpc
) -> None:
    """A 100 MB stream stops cleanly when the client hangs up after its cap."""
    server.push_reply(Reply(stream_bytes=100 * 1024 * 1024, body=b'{"data": "'))
    async with session.post(f"{server.url}/rpc/public/run") as reply:
        got = 0
        async for chunk in reply.content.iter_any():
            got += len(chunk)
            if got > 1024 * 1024:
                break
    assert got < 10 * 1024 * 1024
    assert (await rpc(LIST))["success"] is True


@pytest.mark.parametrize(
    "options",
    [
        {"p_500": 1.5},
        {"p_503": -0.1},
        {"p_500": 0.6, "p_503": 0.6},
        {"rate_limit": 0},
        {"retry_after": -1},
    ],
)
def test_faults_validate_their_values(options: dict[str, Any]) -> None:
    """Impossible fault scripts are refused with ValueError."""
    with pytest.raises(ValueError, match="Faults"):
        Faults(**options)


def test_faults_only_actions_becomes_frozenset() -> None:
    """only_actions accepts any iterable of names and stores a frozenset."""
    faults = Faults(only_actions={"create_contact"})  # type: ignore[arg-type]
    assert faults.only_actions == frozenset({"create_contact"})
    assert faults.applies_to("create_contact")
    assert not faults.applies_to("list_contacts")
