"""FakeSippet lifecycle, HTTP surface, authentication and request records."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from datetime import datetime

import aiohttp
import pytest

from sippet_async.testing import FakeSippet, RecordedRequest, run_forever, serve

from ._support import API_KEY, SEEDED, Post, Rpc

ERROR_KEYS = {"type", "message", "shortMessage", "vars", "fields", "path"}


async def test_listens_on_a_free_loopback_port() -> None:
    """port=0 picks a free port on 127.0.0.1; two servers never share one."""
    async with FakeSippet(API_KEY) as one, FakeSippet(API_KEY) as two:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", one.url)
        assert one.url != two.url


async def test_start_returns_self_and_stop_is_idempotent(session: aiohttp.ClientSession) -> None:
    """start() returns the server; stop() twice is fine; the url is kept and then refused."""
    fake = await FakeSippet(API_KEY).start()
    with pytest.raises(RuntimeError):
        await fake.start()
    url = fake.url
    await fake.stop()
    await fake.stop()
    assert fake.url == url
    with pytest.raises(aiohttp.ClientConnectionError):
        async with session.post(f"{url}/rpc/public/run", json={}):
            pass


def test_url_before_start_is_an_error() -> None:
    """Reading url before start() raises instead of returning a wrong address."""
    with pytest.raises(RuntimeError):
        _ = FakeSippet(API_KEY).url


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/rpc/public/run", 405),
        ("PUT", "/rpc/public/validate", 405),
        ("POST", "/rpc/public/other", 404),
        ("GET", "/", 404),
    ],
)
async def test_other_methods_and_paths(
    server: FakeSippet, session: aiohttp.ClientSession, method: str, path: str, status: int
) -> None:
    """Only POST on the two RPC paths reaches the RPC layer; the rest is 404/405, recorded."""
    async with session.request(method, server.url + path) as reply:
        assert reply.status == status
        if status == 405:
            assert reply.headers["Allow"] == "POST"
    assert [(r.method, r.path, r.status) for r in server.requests] == [(method, path, status)]


@pytest.mark.parametrize(
    ("key", "message"), [(None, "Missing API key"), ("sk_wrong", "Invalid API key")]
)
async def test_bad_key_is_401_with_envelope(
    server: FakeSippet, post: Post, key: str | None, message: str
) -> None:
    """A missing or wrong x-api-key is HTTP 401 with an authentication_failed envelope."""
    answer = await post({"action": "list_contacts", "fields": ["id"]}, key=key)
    assert answer.status == 401
    assert answer.json() == {
        "success": False,
        "errors": [
            {
                "type": "authentication_failed",
                "message": message,
                "shortMessage": "Authentication failed",
                "vars": {},
                "fields": [],
                "path": [],
            }
        ],
    }
    (record,) = server.requests
    assert (record.status, record.executed, record.action) == (401, False, "list_contacts")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'{"action": "list_contacts", "fields": ["id"]}', "text/plain"),
        (b"", "application/json"),
        (b"\xff\xfe{", "application/json"),
    ],
)
async def test_body_that_is_not_a_json_object_misses_action(
    post: Post, body: bytes, content_type: str
) -> None:
    """Non-JSON, non-object or non-JSON-typed bodies yield no params: missing `action` (§2)."""
    answer = await post(body, headers={"Content-Type": content_type})
    assert answer.status == 200
    (error,) = answer.json()["errors"]
    assert (error["type"], error["vars"]) == ("missing_required_parameter", {"parameter": "action"})


async def test_records_every_request_in_arrival_order(server: FakeSippet, rpc: Rpc) -> None:
    """Records keep method, path, lower-cased headers, raw body, JSON, action, status, executed."""
    await rpc({"action": "list_contacts", "fields": ["id"]}, headers={"X-Trace": "t1"})
    await rpc({"action": "nope"})
    first, second = server.requests
    assert isinstance(first, RecordedRequest)
    assert (first.method, first.path, first.action) == ("POST", "/rpc/public/run", "list_contacts")
    assert first.headers["x-trace"] == "t1"
    assert first.headers["x-api-key"] == API_KEY
    assert first.json == {"action": "list_contacts", "fields": ["id"]}
    assert b'"list_contacts"' in first.body
    assert (first.status, first.executed, first.fault, first.replayed) == (200, True, None, False)
    assert (second.status, second.executed) == (200, False)
    assert first.received_at <= second.received_at


async def test_reset_records_forgets_requests_only(server: FakeSippet, rpc: Rpc) -> None:
    """reset_records() clears the log and keeps the data."""
    await rpc({"action": "create_contact", "input": {"fullName": "A", "phoneE164": "+15550100001"}})
    server.reset_records()
    assert server.requests == []
    assert len(server.contacts) == SEEDED + 1


async def test_seed_contacts_are_deterministic_and_valid() -> None:
    """Same seed, same contacts: distinct E.164 phones, increasing insertedAt, some nils."""
    async with (
        FakeSippet(API_KEY, seed_contacts=30, seed=3) as one,
        FakeSippet(API_KEY, seed_contacts=30, seed=3) as two,
    ):
        assert one.contacts == two.contacts
    contacts = one.contacts
    phones = [c["phoneE164"] for c in contacts]
    assert phones[0] == "+15550000001"
    assert len(set(phones)) == 30
    assert all(re.fullmatch(r"\+1555000\d{4}", phone) for phone in phones)
    stamps = [datetime.fromisoformat(c["insertedAt"]) for c in contacts]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 30
    assert any(c["email"] is None for c in contacts)
    assert any(c["company"] is None for c in contacts)
    assert any(c["tags"] for c in contacts)
    assert any(not c["tags"] for c in contacts)
    assert set(contacts[0]) == {
        "id",
        "fullName",
        "phoneE164",
        "email",
        "company",
        "tags",
        "insertedAt",
        "updatedAt",
    }


async def test_contacts_view_is_a_copy(server: FakeSippet) -> None:
    """Mutating server.contacts never touches the server's data."""
    server.contacts[0]["tags"].append("mutated")
    server.contacts.clear()
    assert len(server.contacts) == SEEDED
    assert "mutated" not in server.contacts[0]["tags"]


async def test_run_forever_serves_until_cancelled(session: aiohttp.ClientSession) -> None:
    """run_forever() serves, calls on_ready, and on cancel stops cleanly and re-raises."""
    ready: asyncio.Future[FakeSippet] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run_forever(api_key=API_KEY, seed_contacts=2, on_ready=ready.set_result)
    )
    fake = await ready
    payload = {"action": "list_contacts", "fields": ["id"]}
    async with session.post(
        f"{fake.url}/rpc/public/run", json=payload, headers={"x-api-key": API_KEY}
    ) as reply:
        assert len((await reply.json())["data"]["results"]) == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(aiohttp.ClientConnectionError):
        async with session.post(f"{fake.url}/rpc/public/run", json=payload):
            pass


async def test_serve_returns_on_sigterm() -> None:
    """serve() installs SIGINT/SIGTERM handlers and returns cleanly on a signal."""
    ready: asyncio.Future[FakeSippet] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve("127.0.0.1", 0, API_KEY, on_ready=ready.set_result))
    await ready
    # Only signal ourselves once a handler is installed (never the default: it would kill us).
    assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None)
    os.kill(os.getpid(), signal.SIGTERM)
    await task
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
