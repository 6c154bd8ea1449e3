"""The secret key never appears in logs, reprs or exception text (a canary-key sweep)."""

from __future__ import annotations

import logging
import pickle
import secrets
import traceback
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from sippet_async import ApiKey, SippetClient, SippetError
from sippet_async import _protocol as protocol
from sippet_async.testing import FakeSippet


@pytest.fixture
def canary() -> str:
    """A fresh, unmistakable secret key."""
    return f"sk_test_CANARY_{secrets.token_hex(12)}"


@pytest.fixture
async def canary_server(canary: str) -> AsyncIterator[FakeSippet]:
    """A fake Sippet that accepts the canary key."""
    async with FakeSippet(api_key=canary, seed_contacts=5) as s:
        yield s


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Everything at DEBUG: the root logger and the sippet_async logger."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sippet_async")
    return caplog


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def _exception_texts(exc: BaseException) -> list[str]:
    """str and repr of the exception and its whole cause/context chain, its attributes
    (for ours) and the formatted traceback a caller would log."""
    texts = ["".join(traceback.format_exception(exc))]
    for link in _chain(exc):
        texts += [str(link), repr(link), repr(link.args)]
        if isinstance(link, SippetError):
            texts.append(repr(vars(link)))
            texts += [repr(item) for item in getattr(link, "errors", ())]
    return texts


def _log_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    texts = [caplog.text]
    for record in caplog.records:
        texts += [record.getMessage(), repr(record.args), record.exc_text or ""]
    return texts


def _assert_absent(canary: str, texts: list[str]) -> None:
    leaks = [text for text in texts if canary in text]
    assert leaks == [], f"the secret key leaked into: {leaks[0][:300]!r}"


async def test_canary_absent_on_every_error_path(
    error_scenario: Any, ctx: Any, canary: str, canary_server: FakeSippet,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    """For every error scenario: no log line, exception text or cause carries the key."""
    ctx.server, ctx.key = canary_server, canary
    with pytest.raises(Exception) as info:  # noqa: PT011 - test_client_errors checks the class
        await error_scenario.act(ctx)
    _assert_absent(canary, _exception_texts(info.value) + _log_texts(debug_logs))


async def test_canary_absent_on_success_and_in_reprs(
    canary: str, canary_server: FakeSippet, debug_logs: pytest.LogCaptureFixture
) -> None:
    """Successful calls, validate, and the reprs of the client, its config and requests."""
    texts: list[str] = []
    async with SippetClient(canary, base_url=canary_server.url) as client:
        created = await client.run_with_metadata(
            "create_contact", input={"fullName": "Ada", "phoneE164": "+15555550123"},
            fields=["id"],
        )
        await client.run("list_contacts", fields=["id"], page={"limit": 2})
        check = await client.validate("create_contact", input={})
        texts += [repr(created), repr(check), repr(client), str(client)]
        config = client.config
        texts += [repr(config), str(config), repr(config.api_key), str(config.api_key),
                  f"{config.api_key}", config.api_key.masked, repr(config.timeouts)]
        assert config.api_key.reveal() == canary  # the header still gets the real key
    texts += [repr(client), str(client)]
    request = protocol.HttpRequest(url=canary_server.url, body=b"{}",
                                   headers={protocol.API_KEY_HEADER: canary})
    texts += [repr(request), str(request)]
    with pytest.raises(TypeError) as info:
        pickle.dumps(ApiKey(canary))
    texts += _exception_texts(info.value)
    _assert_absent(canary, texts + _log_texts(debug_logs))
    assert canary_server.requests[0].headers["x-api-key"] == canary


def test_masked_key_hint_is_short() -> None:
    """The mask reveals at most the key's kind prefix, never its secret part."""
    key = ApiKey("sk_live_" + "s3cr3t" * 4)
    assert "s3cr3t" not in repr(key)
    assert "s3cr3t" not in key.masked
