"""Shared fixtures for the client tests: a FakeSippet on 127.0.0.1 and a client bound to it."""

from __future__ import annotations

import email.utils
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec
import pytest
from _client_tls import private_ca

from sippet_async import (
    ActionNotFoundError,
    AuthenticationError,
    BreakerPolicy,
    ClientClosedError,
    Contact,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    OutcomeUnknownError,
    ProtocolError,
    RateLimitError,
    ResponseTooLargeError,
    ResultTypeError,
    RpcError,
    ServerError,
    ServerUnreachableError,
    SippetClient,
    SippetError,
    Timeouts,
    TLSVerificationError,
    TransportError,
    TransportTimeoutError,
    UsageError,
)
from sippet_async._retry import RetryPolicy
from sippet_async.testing import FakeSippet, Reply

KEY = "sk_test_client_suite_0123456789"
SEED_CONTACTS = 30
# These tests pin what one attempt does (which error, what was sent); retries have their
# own tests, so the clients here make exactly one attempt per call.
NO_RETRY: Final = RetryPolicy(attempts=1)


@pytest.fixture
def api_key() -> str:
    """The key the fake server accepts."""
    return KEY


@pytest.fixture
def unused_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def server() -> AsyncIterator[FakeSippet]:
    """A fake Sippet with a few seeded contacts, on an ephemeral 127.0.0.1 port."""
    async with FakeSippet(api_key=KEY, seed_contacts=SEED_CONTACTS) as s:
        yield s


@pytest.fixture
async def client(server: FakeSippet) -> AsyncIterator[SippetClient]:
    """A client pointed at ``server`` with the right key, making one attempt per call."""
    async with SippetClient(KEY, base_url=server.url, retry=NO_RETRY) as c:
        yield c


# -- error scenarios --------------------------------------------------------------------
#
# One table of failures, each driven over real HTTP against the fake server (or rejected
# before any I/O). test_client_errors.py checks each raises the expected sippet_async class
# with the right attributes; test_client_secrets.py replays them all with a canary key.
# ``pytest_generate_tests`` hands the table to any test that asks for ``error_scenario``.

MISSING_ID = "00000000-0000-4000-8000-00000000dead"
HTML = b"<html><body><h1>Bad Gateway</h1></body></html>"


@dataclass
class Ctx:
    """What a scenario may use: the server, the key it accepts, a dead port, env patching."""

    server: FakeSippet
    key: str
    port: int
    monkeypatch: pytest.MonkeyPatch

    def client(self, **options: Any) -> SippetClient:
        """A client for ``server`` with the right key, plus ``options``."""
        options.setdefault("base_url", self.server.url)
        options.setdefault("retry", NO_RETRY)
        return SippetClient(self.key, **options)


Act = Callable[[Ctx], Awaitable[object]]
Check = Callable[[BaseException, Ctx], None]


def _no_check(exc: BaseException, ctx: Ctx) -> None:
    """Nothing beyond the class."""


@dataclass(frozen=True)
class ErrorScenario:
    """A failure to provoke, the class it must raise, and what else must hold."""

    id: str
    expected: type[SippetError]
    act: Act
    check: Check = _no_check
    before_io: bool = False  # must fail before any request reaches the server


async def _run(ctx: Ctx, action: str = "list_contacts", /, *,
               options: dict[str, Any] | None = None, **keys: Any) -> object:
    async with ctx.client(**(options or {})) as client:
        return await client.run(action, **keys)


def run(action: str = "list_contacts", /, *, options: dict[str, Any] | None = None,
        **keys: Any) -> Act:
    """Act: run ``action`` with ``keys`` on a fresh client."""
    if action.startswith("list_") and "fields" not in keys:
        keys["fields"] = ["id"]
    return lambda ctx: _run(ctx, action, options=options, **keys)


def scripted(reply: Reply | Callable[[], Reply], action: str = "list_contacts", /, *,
             options: dict[str, Any] | None = None, **keys: Any) -> Act:
    """Act: script the server's next reply (or build it at run time), then run ``action``."""
    inner = run(action, options=options, **keys)

    async def act(ctx: Ctx) -> object:
        ctx.server.push_reply(reply if isinstance(reply, Reply) else reply())
        return await inner(ctx)

    return act


def envelope(*errors: dict[str, Any]) -> Reply:
    """A scripted 200 ``success: false`` reply carrying hand-written error objects (§6)."""
    body = {"success": False, "errors": list(errors)}
    return Reply(status=200, body=msgspec.json.encode(body),
                 headers={"content-type": "application/json"})


def attrs(**expected: Any) -> Check:
    """Check: the exception has these attribute values."""
    def check(exc: BaseException, ctx: Ctx) -> None:
        for name, value in expected.items():
            assert getattr(exc, name) == value, (name, getattr(exc, name))
    return check


def first_item(**expected: Any) -> Check:
    """Check: an RpcError whose first error item has these attribute values."""
    def check(exc: BaseException, ctx: Ctx) -> None:
        assert isinstance(exc, RpcError)
        assert exc.first is not None
        for name, value in expected.items():
            assert getattr(exc.first, name) == value, (name, getattr(exc.first, name))
    return check


def checks(*parts: Check) -> Check:
    """Check: all of ``parts``."""
    def check(exc: BaseException, ctx: Ctx) -> None:
        for part in parts:
            part(exc, ctx)
    return check


def cause(kind: type[BaseException]) -> Check:
    """Check: ``__cause__`` is a ``kind`` (the failure behind a wrapping error)."""
    def check(exc: BaseException, ctx: Ctx) -> None:
        assert isinstance(exc.__cause__, kind), repr(exc.__cause__)
    return check


def one_request(exc: BaseException, ctx: Ctx) -> None:
    """Check: the server received exactly one request (nothing was followed or re-sent)."""
    assert len(ctx.server.requests) == 1


def names_status(status: int) -> Check:
    """Check: a ProtocolError that carries and names the HTTP status."""
    def check(exc: BaseException, ctx: Ctx) -> None:
        assert isinstance(exc, ProtocolError)
        assert exc.status == status
        assert str(status) in str(exc)
    return check


def retry_after_between(low: float, high: float) -> Check:
    """Check: ``retry_after`` lies in [low, high] (an HTTP-date has 1 s resolution)."""
    def check(exc: BaseException, ctx: Ctx) -> None:
        value = getattr(exc, "retry_after")  # noqa: B009 - any class with retry_after
        assert value is not None
        assert low <= value <= high, value
    return check


def _http_date(seconds_ahead: float) -> str:
    return email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_ahead),
                                       usegmt=True)


async def _closed_client(ctx: Ctx) -> object:
    client = ctx.client()
    await client.aclose()
    return await client.run("list_contacts", fields=["id"])


async def _slow_server(ctx: Ctx) -> object:
    ctx.server.latency = 1.0  # far beyond the 50 ms read timeout below
    return await _run(ctx, options={"timeout": Timeouts(read=0.05)}, fields=["id"])


async def _no_key(ctx: Ctx) -> object:
    ctx.monkeypatch.delenv("SIPPET_SECRET_KEY", raising=False)
    async with SippetClient(base_url=ctx.server.url, retry=NO_RETRY) as client:
        return await client.run("list_contacts", fields=["id"])


def _with_key(suffix: str) -> Act:
    async def act(ctx: Ctx) -> object:
        async with SippetClient(ctx.key + suffix, base_url=ctx.server.url,
                                retry=NO_RETRY) as client:
            return await client.run("list_contacts", fields=["id"])
    return act


def _refused(ctx: Ctx) -> Awaitable[object]:
    return _run(ctx, options={"base_url": f"http://127.0.0.1:{ctx.port}"}, fields=["id"])


async def _untrusted_ca(ctx: Ctx) -> object:
    """A server whose certificate a CA the client does not know signed."""
    async with (FakeSippet(ctx.key, ssl=private_ca().server) as tls_server,
                SippetClient(ctx.key, base_url=tls_server.url, retry=NO_RETRY) as client):
        return await client.run("list_contacts", fields=["id"])


def _tells_how_to_trust_a_ca(exc: BaseException, ctx: Ctx) -> None:
    assert isinstance(exc, TLSVerificationError)
    assert exc.sent is False
    assert "ssl=" in str(exc)


async def _breaker_open(ctx: Ctx) -> object:
    # One refusal opens this breaker, and its first probe is a minute away.
    breaker = BreakerPolicy(threshold=1, probe_wait=60.0, max_probe_wait=60.0)
    async with ctx.client(base_url=f"http://127.0.0.1:{ctx.port}", breaker=breaker) as client:
        with pytest.raises(TransportError) as refused:
            await client.run("list_contacts", fields=["id"])
        assert type(refused.value) is TransportError
        return await client.run("list_contacts", fields=["id"])


def _self_referencing() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["self"] = value
    return value


_UNSUPPORTED_TYPE: Any = 42  # not a type msgspec can decode into


def _usage(id: str, act: Act) -> ErrorScenario:
    return ErrorScenario(id, UsageError, act, before_io=True)


SCENARIOS: Final[tuple[ErrorScenario, ...]] = (
    # -- authentication (§12.1) --
    ErrorScenario("auth-401-wrong-key", AuthenticationError, _with_key("_WRONG"),
                  attrs(status=401)),
    ErrorScenario("auth-403-scripted", AuthenticationError,
                  scripted(Reply(status=403, body=b"Forbidden")), attrs(status=403)),
    # -- rate limiting (§12.1) --
    ErrorScenario("429-delta-seconds", RateLimitError,
                  scripted(Reply(status=429, headers={"Retry-After": "3"})),
                  attrs(retry_after=3.0)),
    ErrorScenario("429-http-date", RateLimitError,
                  # built when the test runs: a date fixed at import time goes stale
                  scripted(lambda: Reply(status=429, headers={"Retry-After": _http_date(30)})),
                  retry_after_between(25.0, 31.0)),
    ErrorScenario("429-no-retry-after", RateLimitError, scripted(Reply(status=429)),
                  attrs(retry_after=None)),
    # -- server errors, HTML bodies (§12.1) --
    *(
        ErrorScenario(f"{status}-html", ServerError,
                      scripted(Reply(status=status, body=HTML,
                                     headers={"content-type": "text/html"})),
                      attrs(status=status, retry_after=None))
        for status in (500, 502, 503, 504)
    ),
    ErrorScenario("503-retry-after", ServerError,
                  scripted(Reply(status=503, body=HTML, headers={"Retry-After": "7"})),
                  attrs(status=503, retry_after=7.0)),
    # -- other statuses, redirects, malformed envelopes (§12.1, §12.2) --
    ErrorScenario("418", ProtocolError, scripted(Reply(status=418, body=b"teapot")),
                  names_status(418)),
    ErrorScenario("404-html", ProtocolError, scripted(Reply(status=404, body=HTML)),
                  names_status(404)),
    ErrorScenario("307-not-followed", ProtocolError,
                  scripted(Reply(status=307, headers={"Location": "/rpc/public/run"})),
                  checks(names_status(307), one_request)),
    *(
        ErrorScenario(f"200-not-an-envelope-{name}", ProtocolError,
                      scripted(Reply(status=200, body=body)), attrs(status=200))
        for name, body in (
            ("html", HTML), ("empty", b""), ("array", b"[]"), ("no-success", b'{"data": 1}'),
            ("false-without-errors", b'{"success": false}'), ("truncated", b'{"success": tr'),
            ("invalid-utf8", b'{"success": true, "data": "\xff\xfe"}'),
            ("deep-nesting", b'{"success": true, "data": ' + b"[" * 100_000 + b"]" * 100_000
             + b"}"),
        )
    ),
    # -- RPC errors from the server's own rules (§6) --
    ErrorScenario("not-found", NotFoundError,
                  run("get_contact", input={"id": MISSING_ID}, fields=["id"]),
                  first_item(type="not_found")),
    ErrorScenario("action-not-found", ActionNotFoundError, run("no_such_action"),
                  checks(first_item(type="action_not_found"), attrs(action="no_such_action"))),
    ErrorScenario("required", InvalidInputError,
                  run("create_contact", input={"phoneE164": "+15555550123"}, fields=["id"]),
                  first_item(type="required", fields=("fullName",))),
    ErrorScenario("invalid-attribute", InvalidInputError,
                  run("create_contact", input={"fullName": "Ada", "phoneE164": "not a phone"}),
                  first_item(type="invalid_attribute", fields=("phoneE164",))),
    ErrorScenario("unknown-field", InvalidInputError, run("list_contacts", fields=["nope"]),
                  first_item(type="unknown_field")),
    ErrorScenario("empty-fields-array", InvalidInputError, run("list_contacts", fields=[]),
                  first_item(type="empty_fields_array")),
    ErrorScenario("missing-required-parameter", InvalidInputError,
                  run("get_contact", input={"id": MISSING_ID}),
                  first_item(type="missing_required_parameter")),
    ErrorScenario("internal-error-code-only", RpcError,
                  run("list_contacts", filter={"noSuchField": {"eq": 1}}),
                  first_item(code="internal_error", type=None)),
    ErrorScenario("forbidden-scripted", ForbiddenError,
                  scripted(envelope({"type": "forbidden", "message": "forbidden",
                                     "shortMessage": "Forbidden", "vars": {}, "fields": [],
                                     "path": []})),
                  first_item(type="forbidden")),
    # -- transport (§12.5) --
    ErrorScenario("connection-refused", TransportError, _refused, attrs(sent=False)),
    ErrorScenario("read-timeout", TransportTimeoutError, _slow_server,
                  lambda exc, ctx: _is_builtin_timeout(exc)),
    ErrorScenario("connection-reset", TransportError, scripted(Reply(reset=True)),
                  attrs(sent=True)),
    ErrorScenario("tls-unknown-ca", TLSVerificationError, _untrusted_ca,
                  _tells_how_to_trust_a_ca),
    ErrorScenario("breaker-open-not-sent", ServerUnreachableError, _breaker_open,
                  checks(attrs(sent=False), cause(TransportError))),
    # -- writes that failed ambiguously are not re-sent (§12.5) --
    ErrorScenario("write-500-outcome-unknown", OutcomeUnknownError,
                  scripted(Reply(status=500, body=HTML), "create_contact", input={}),
                  checks(attrs(action="create_contact"), cause(ServerError), one_request)),
    ErrorScenario("write-reset-outcome-unknown", OutcomeUnknownError,
                  scripted(Reply(reset=True), "create_contact", input={}),
                  checks(attrs(action="create_contact"), cause(TransportError), one_request)),
    ErrorScenario("write-503-retry-after-not-executed", ServerError,
                  scripted(Reply(status=503, headers={"Retry-After": "1"}), "create_contact",
                           input={}),
                  attrs(status=503, retry_after=1.0)),
    ErrorScenario("write-429-not-executed", RateLimitError,
                  scripted(Reply(status=429, headers={"Retry-After": "1"}), "create_contact",
                           input={}),
                  attrs(retry_after=1.0)),
    # -- a valid reply whose data does not fit the caller's type --
    ErrorScenario("data-does-not-fit-type", ResultTypeError,
                  scripted(Reply(status=200, body=b'{"success":true,"data":{"id":5}}'),
                           "get_contact", input={"id": MISSING_ID}, fields=["id"],
                           type=Contact),
                  attrs(status=200, path="$.data.id", expected="str", type=Contact)),
    # -- size cap --
    ErrorScenario("too-large-content-length", ResponseTooLargeError,
                  scripted(Reply(status=200, body=b" " * (2 * 1024 * 1024)),
                           options={"max_response_bytes": 1024 * 1024}),
                  attrs(status=200)),
    # -- lifecycle --
    ErrorScenario("closed-client", ClientClosedError, _closed_client, before_io=True),
    # -- usage errors, all before any I/O --
    _usage("no-key", _no_key),
    _usage("key-with-cr", _with_key("\r")),
    _usage("key-with-lf", _with_key("\nx-evil: 1")),
    _usage("key-with-nul", _with_key("\x00")),
    _usage("action-with-cr", run("list_contacts\r")),
    _usage("action-with-lf", run("list_contacts\nx")),
    _usage("action-with-nul", run("list_contacts\x00")),
    _usage("action-empty", run("")),
    *(
        _usage(f"base-url-{name}", run(options={"base_url": url}))
        for name, url in (
            ("ftp", "ftp://api.sippet.ai"), ("no-host", "http://"),
            ("no-scheme", "api.sippet.ai"), ("bad-port", "http://127.0.0.1:99999"),
            ("credentials", "https://user:pw@api.sippet.ai"), ("space", "http://a b.ai"),
            ("query", "https://api.sippet.ai/?x=1"),
        )
    ),
    _usage("fields-is-a-string", run("list_contacts", fields="id")),
    _usage("input-is-a-list", run("create_contact", input=[1])),
    _usage("page-is-a-string", run("list_contacts", page="1")),
    _usage("sort-of-ints", run("list_contacts", sort=[1])),
    _usage("unknown-keyword", run("list_contacts", fieldz=["id"])),
    _usage("unknown-keyword-given-none", run("list_contacts", fields=["id"], fieldz=None)),
    _usage("unencodable-value", run("create_contact", input={"when": object()})),
    _usage("self-referencing-value", run("create_contact", input=_self_referencing())),
    _usage("unsupported-type", run("list_contacts", type=_UNSUPPORTED_TYPE)),
    _usage("negative-timeout", run(options={"timeout": -1})),
    _usage("zero-concurrency", run(options={"max_concurrency": 0})),
    _usage("tiny-response-cap", run(options={"max_response_bytes": 10})),
)


def _is_builtin_timeout(exc: BaseException) -> None:
    assert isinstance(exc, TimeoutError)
    assert isinstance(exc, TransportError)
    assert exc.sent is True


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize any test that takes ``error_scenario`` over SCENARIOS."""
    if "error_scenario" in metafunc.fixturenames:
        metafunc.parametrize("error_scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])


@pytest.fixture
def ctx(server: FakeSippet, api_key: str, unused_port: int,
        monkeypatch: pytest.MonkeyPatch) -> Ctx:
    """The context error scenarios run in."""
    return Ctx(server, api_key, unused_port, monkeypatch)


@pytest.fixture
def error_scenarios() -> tuple[ErrorScenario, ...]:
    """The whole table, for tests that look at it as a whole."""
    return SCENARIOS
