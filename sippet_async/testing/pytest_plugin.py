"""The pytest plugin: a running fake server and a client bound to it, one pair per test.

pytest loads it by itself once sippet_async is installed (entry point ``pytest11``, name
``sippet``); the fixtures need pytest-asyncio, in strict or auto mode. Disable the plugin
with ``-p no:sippet``.

* ``sippet_server``: a running :class:`~sippet_async.testing.FakeSippet` (``.url``,
  ``.requests``, ``.contacts``, ``.faults``, ``.push_reply`` ...).
* ``sippet_client``: an open :class:`~sippet_async.SippetClient` bound to it (its key
  and URL, unless ``client_options`` says otherwise).
* ``@pytest.mark.sippet(...)``: how to start them; the keywords of ``FakeSippet``
  (``api_key``, ``seed_contacts``, ``faults``, ``latency``, ``seed`` ...) and
  ``client_options``, a dict of ``SippetClient`` keywords. On a module or class too; the
  marker nearest the test wins, keyword by keyword.

When a test that used the server fails, its report lists the requests the server received.

Example:
    >>> @pytest.mark.asyncio
    ... @pytest.mark.sippet(seed_contacts=3)
    ... async def test_lists(sippet_client, sippet_server):
    ...     page = await sippet_client.run("list_contacts", fields=["id"])
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Generator, Mapping
from typing import Any, Final, TypeVar, cast

import pytest

from sippet_async import SippetClient

from ._records import RecordedRequest
from ._server import FakeSippet

__all__ = ["MARKER", "sippet_client", "sippet_server"]

MARKER: Final = "sippet"
_SERVER_OPTIONS: Final = frozenset({
    "api_key", "seed_contacts", "max_page_size", "latency", "honour_idempotency_key",
    "faults", "seed", "keepalive_timeout",
})
_CLIENT_OPTIONS: Final = "client_options"
_SERVER_KEY: Final = pytest.StashKey[FakeSippet]()
_SHOWN_REQUESTS: Final = 50  # the last ones, in a failing test's report
_NEEDS_PYTEST_ASYNCIO: Final = (
    "the {name} fixture of sippet_async needs pytest-asyncio: pip install pytest-asyncio "
    "(then mark the test with @pytest.mark.asyncio, or set asyncio_mode = \"auto\")"
)

_Fixture = TypeVar("_Fixture", bound=Callable[..., Any])


def _async_fixture(function: _Fixture) -> _Fixture:
    """``pytest_asyncio.fixture`` (works in strict mode), or, without pytest-asyncio, a
    fixture that fails with what to install: pytest itself must start either way."""
    try:
        import pytest_asyncio
    except ImportError:
        name = function.__name__

        def missing() -> None:
            pytest.fail(_NEEDS_PYTEST_ASYNCIO.format(name=name), pytrace=False)

        return cast(_Fixture, pytest.fixture(name=name)(missing))
    return cast(_Fixture, pytest_asyncio.fixture(function))


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker, so ``--strict-markers`` accepts it."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**options): start the sippet_server fixture with these FakeSippet "
        f"keywords ({', '.join(sorted(_SERVER_OPTIONS))}), and sippet_client with "
        f"{_CLIENT_OPTIONS}={{SippetClient keywords}}",
    )


def _options_for(node: pytest.Item) -> dict[str, Any]:
    """The ``sippet`` marker keywords that apply to a test, nearest marker winning."""
    options: dict[str, Any] = {}
    for mark in reversed(list(node.iter_markers(MARKER))):  # farthest first
        if mark.args:
            pytest.fail(f"@pytest.mark.{MARKER} takes keywords only, got {mark.args!r}",
                        pytrace=False)
        unknown = set(mark.kwargs) - _SERVER_OPTIONS - {_CLIENT_OPTIONS}
        if unknown:
            pytest.fail(
                f"@pytest.mark.{MARKER} got unknown option(s) {sorted(unknown)}; known: "
                f"{sorted(_SERVER_OPTIONS | {_CLIENT_OPTIONS})}",
                pytrace=False,
            )
        options.update(mark.kwargs)
    return options


@_async_fixture
async def sippet_server(request: pytest.FixtureRequest) -> AsyncIterator[FakeSippet]:
    """A running FakeSippet on 127.0.0.1, started as the test's ``sippet`` marker says."""
    options = _options_for(request.node)
    options.pop(_CLIENT_OPTIONS, None)
    async with FakeSippet(**options) as server:
        request.node.stash[_SERVER_KEY] = server
        yield server


@_async_fixture
async def sippet_client(
    sippet_server: FakeSippet, request: pytest.FixtureRequest
) -> AsyncIterator[SippetClient]:
    """An open SippetClient bound to ``sippet_server``, with its key and URL."""
    extra: Mapping[str, Any] = _options_for(request.node).get(_CLIENT_OPTIONS) or {}
    options = {"api_key": sippet_server.api_key, "base_url": sippet_server.url, **extra}
    async with SippetClient(**options) as client:
        yield client


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing test that used ``sippet_server`` gets the server's requests in its report."""
    report = yield
    server = item.stash.get(_SERVER_KEY, None)
    if server is not None and report.failed and call.when == "call":
        requests = server.requests
        lines = [_describe(r) for r in requests[-_SHOWN_REQUESTS:]]
        if len(requests) > _SHOWN_REQUESTS:
            lines.insert(0, f"... {len(requests) - _SHOWN_REQUESTS} earlier requests")
        report.sections.append(
            (f"sippet_server requests ({len(requests)})", "\n".join(lines) or "none")
        )
    return report


def _describe(request: RecordedRequest) -> str:
    status = "no reply" if request.status is None else str(request.status)
    notes = [note for note in (
        request.fault,
        "executed" if request.executed else None,
        "replayed" if request.replayed else None,
    ) if note]
    suffix = f" ({', '.join(notes)})" if notes else ""
    return f"{request.method} {request.path} {request.action or '-'} -> {status}{suffix}"
