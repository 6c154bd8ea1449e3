"""Which failures are retried, for reads and for writes, over real HTTP to the fake server."""

from __future__ import annotations

import asyncio
import inspect
import socket

import pytest

from sippet_async import (
    AiohttpTransport,
    AuthenticationError,
    InvalidInputError,
    OutcomeUnknownError,
    RateLimitError,
    ServerError,
    SippetClient,
    Timeouts,
    TransportError,
)
from sippet_async._protocol import HttpRequest, HttpResponse
from sippet_async.testing import FakeSippet, Reply

from ._support import KEY, FakeSleep, Recorder, client_for, new_call

HTML = b"<html><body>oops</body></html>"

# Replies that mean "did not execute, send it again" even for a write (§12.5).
UNEXECUTED = {
    "429": Reply(status=429, headers={"Retry-After": "1"}),
    "429-no-retry-after": Reply(status=429),
    "503-retry-after": Reply(status=503, body=HTML, headers={"Retry-After": "2"}),
}
# Replies after which a write may or may not have executed.
AMBIGUOUS = {
    "500": Reply(status=500, body=HTML),
    "502": Reply(status=502, body=HTML),
    "503-no-retry-after": Reply(status=503, body=HTML),
    "504": Reply(status=504, body=HTML),
    "reset": Reply(reset=True),
    "lost-after-commit": Reply(execute=True, reset=True),
}


@pytest.mark.parametrize("reply", [*UNEXECUTED.values(), *AMBIGUOUS.values()],
                         ids=[*UNEXECUTED, *AMBIGUOUS])
async def test_a_read_is_retried_after_any_transient_failure(
    server: FakeSippet, sleep: FakeSleep, reply: Reply
) -> None:
    """list_contacts succeeds on the second attempt, whatever the first one hit."""
    server.push_reply(reply)
    async with client_for(server, sleep=sleep) as client:
        page = await client.run("list_contacts", fields=["id"])
        assert len(page["results"]) == 5
        assert client.counters.requests == 2
        assert client.counters.total_retries == 1
    assert len(server.requests) == 2


@pytest.mark.parametrize("reply", list(UNEXECUTED.values()), ids=list(UNEXECUTED))
async def test_a_write_is_resent_when_the_attempt_provably_did_not_execute(
    server: FakeSippet, sleep: FakeSleep, reply: Reply
) -> None:
    """create_call after a 429 / 503-with-Retry-After: re-sent, and executed exactly once."""
    server.push_reply(reply)
    async with client_for(server, sleep=sleep) as client:
        call = await client.run("create_call", input=new_call(1), fields=["id"])
    assert [c["id"] for c in server.calls] == [call["id"]]
    assert [r.executed for r in server.requests] == [False, True]


@pytest.mark.parametrize("reply", list(AMBIGUOUS.values()), ids=list(AMBIGUOUS))
async def test_an_ambiguous_write_raises_outcome_unknown_and_is_not_resent(
    server: FakeSippet, sleep: FakeSleep, reply: Reply
) -> None:
    """create_call after a 5xx / reset / lost reply: OutcomeUnknownError, one request only."""
    server.push_reply(reply)
    async with client_for(server, sleep=sleep) as client:
        with pytest.raises(OutcomeUnknownError) as info:
            await client.run("create_call", input=new_call(1), fields=["id"])
        assert client.counters.unknown_outcomes == 1
    assert info.value.action == "create_call"
    assert isinstance(info.value.__cause__, ServerError | TransportError)
    assert len(server.requests) == 1
    assert sleep.waits == []


async def test_connection_refused_is_retried_even_for_a_write(sleep: FakeSleep) -> None:
    """Refused connections never reached a server: a write is re-sent, `attempts` times."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with SippetClient(KEY, base_url=f"http://127.0.0.1:{port}",
                            retry=_policy(sleep, attempts=3)) as client:
        with pytest.raises(TransportError) as info:
            await client.run("create_call", input=new_call(1))
        assert client.counters.requests == 3
        assert client.counters.retries == {"connect": 2}
    assert info.value.sent is False


@pytest.mark.parametrize("how", ["per-call", "per-client"])
async def test_a_write_marked_idempotent_is_resent_after_an_ambiguous_failure(
    server: FakeSippet, sleep: FakeSleep, how: str
) -> None:
    """idempotent=True (or idempotent_actions) makes a write retry like a read."""
    options = {"idempotent_actions": {"end_call"}} if how == "per-client" else {}
    async with client_for(server, sleep=sleep, **options) as client:
        call = await client.run("create_call", input=new_call(1), fields=["id"])
        server.push_reply(Reply(status=502, body=HTML))
        if how == "per-call":
            await client.run("end_call", input={"id": call["id"]}, idempotent=True)
        else:
            await client.run("end_call", input={"id": call["id"]})
    assert [r.status for r in server.requests[1:]] == [502, 200]


async def test_a_read_marked_not_idempotent_is_treated_as_a_write(
    server: FakeSippet, sleep: FakeSleep
) -> None:
    """idempotent=False on a read: an ambiguous failure is not re-sent."""
    server.push_reply(Reply(status=500, body=HTML))
    async with client_for(server, sleep=sleep) as client:
        with pytest.raises(OutcomeUnknownError):
            await client.run("list_contacts", fields=["id"], idempotent=False)
    assert len(server.requests) == 1


async def test_validate_is_retried_like_a_read(server: FakeSippet, sleep: FakeSleep) -> None:
    """/validate executes nothing, so a 500 there is retried even for a write action."""
    server.push_reply(Reply(status=500, body=HTML))
    async with client_for(server, sleep=sleep) as client:
        result = await client.validate("create_call", input=new_call(1))
    assert result.ok
    assert len(server.requests) == 2


@pytest.mark.parametrize(("reply", "error"), [
    (Reply(status=401, body=b"no"), AuthenticationError),
    (Reply(status=501, body=HTML), ServerError),
])
async def test_definite_errors_are_not_retried(
    server: FakeSippet, sleep: FakeSleep, reply: Reply, error: type[Exception]
) -> None:
    """401 and non-transient statuses raise at once, after one request."""
    server.push_reply(reply)
    async with client_for(server, sleep=sleep) as client:
        with pytest.raises(error):
            await client.run("list_contacts", fields=["id"])
    assert len(server.requests) == 1


async def test_rpc_errors_are_not_retried(server: FakeSippet, sleep: FakeSleep) -> None:
    """success:false is the server's definite answer: one request, the typed error."""
    async with client_for(server, sleep=sleep) as client:
        with pytest.raises(InvalidInputError):
            await client.run("create_call", input={}, fields=["id"])
    assert len(server.requests) == 1


async def test_retries_stop_after_the_policy_attempts(server: FakeSippet,
                                                      sleep: FakeSleep) -> None:
    """With attempts=3 a read that keeps failing is sent 3 times, then raises the last error."""
    for status in (500, 502, 504, 500):
        server.push_reply(Reply(status=status, body=HTML))
    async with client_for(server, sleep=sleep, policy={"attempts": 3}) as client:
        with pytest.raises(ServerError) as info:
            await client.run("list_contacts", fields=["id"])
        assert client.counters.retries == {"500": 1, "502": 1}
    assert info.value.status == 504
    assert len(server.requests) == 3


async def test_attempts_1_disables_retries(server: FakeSippet, sleep: FakeSleep) -> None:
    """RetryPolicy(attempts=1): the first failure is raised as is."""
    server.push_reply(Reply(status=503, headers={"Retry-After": "1"}))
    async with client_for(server, sleep=sleep, policy={"attempts": 1}) as client:
        with pytest.raises(ServerError):
            await client.run("list_contacts", fields=["id"])
    assert len(server.requests) == 1


async def test_retry_after_is_the_minimum_wait(server: FakeSippet, sleep: FakeSleep) -> None:
    """A 429 with Retry-After: 2.5 is retried after >= 2.5 s even with a tiny backoff."""
    server.push_reply(Reply(status=429, headers={"Retry-After": "2.5"}))
    hooks = Recorder()
    async with client_for(server, sleep=sleep, hooks=hooks,
                          policy={"initial_wait": 0.01, "max_wait": 0.01}) as client:
        await client.run("list_contacts", fields=["id"])
    assert [(cause, wait) for _, _, cause, wait in hooks.retries] == [("429", 2.5)]
    assert sleep.waits[0] == 2.5


async def test_backoff_grows_exponentially_between_attempts(server: FakeSippet,
                                                            sleep: FakeSleep) -> None:
    """Without jitter the waits are initial_wait, 2x, 4x."""
    for _ in range(3):
        server.push_reply(Reply(status=500, body=HTML))
    policy = {"initial_wait": 0.1, "max_wait": 1.0, "jitter": 0.0}
    async with client_for(server, sleep=sleep, policy=policy) as client:
        await client.run("list_contacts", fields=["id"])
    assert sleep.waits == pytest.approx([0.1, 0.2, 0.4])


async def test_a_first_attempt_that_succeeds_runs_no_retry_machinery(
    server: FakeSippet, sleep: FakeSleep
) -> None:
    """20 good calls consult no retry (no hook, no wait, no token); one 500 then makes one."""
    hooks = Recorder()
    async with client_for(server, sleep=sleep, hooks=hooks, policy={"budget": 3}) as client:
        for _ in range(20):
            await client.run("list_contacts", fields=["id"])
        assert (hooks.retries, sleep.waits, client.counters.total_retries) == ([], [], 0)
        server.push_reply(Reply(status=500, body=HTML))
        await client.run("list_contacts", fields=["id"])
        assert [(attempt, cause) for _, attempt, cause, _ in hooks.retries] == [(1, "500")]
        assert len(sleep.waits) == 1
        assert client.counters.total_retries == 1


async def test_a_call_that_succeeds_at_once_is_one_coroutine_under_run(
    server: FakeSippet
) -> None:
    """run awaits the transport through one coroutine (the retry loop), deadline or not
    aside: the loop adds no frame to a call that succeeds at once."""
    chains: list[list[str]] = []

    class Tracing(AiohttpTransport):
        async def send(self, request: HttpRequest) -> HttpResponse:
            chain, frame = [], inspect.currentframe()
            while frame is not None:  # the coroutines from here up to the task's
                if frame.f_code.co_flags & inspect.CO_COROUTINE:
                    chain.append(frame.f_code.co_name)
                frame = frame.f_back
            chains.append(chain[::-1])
            return await super().send(request)

    transport = Tracing(timeouts=Timeouts(), max_concurrency=4, max_response_bytes=1 << 20)
    async with SippetClient(KEY, base_url=server.url, transport=transport) as client:
        async def run() -> object:
            return await client.run("list_contacts", fields=["id"])

        await asyncio.create_task(run())
    # the task's own coroutine, SippetClient.run, the retry loop, the transport's send
    assert len(chains) == 1
    assert chains[0] == ["run", "run", chains[0][2], "send"], chains


async def test_rate_limit_error_after_exhausted_retries_keeps_retry_after(
    server: FakeSippet, sleep: FakeSleep
) -> None:
    """A 429 that persists through every attempt raises RateLimitError with retry_after."""
    for _ in range(2):
        server.push_reply(Reply(status=429, headers={"Retry-After": "1.5"}))
    async with client_for(server, sleep=sleep, policy={"attempts": 2}) as client:
        with pytest.raises(RateLimitError) as info:
            await client.run("create_call", input=new_call(1))
        assert client.counters.rate_limited == 2
    assert info.value.retry_after == 1.5


def _policy(sleep: FakeSleep, **fields: object) -> object:
    from sippet_async import RetryPolicy

    return RetryPolicy(sleep=sleep, **fields)  # type: ignore[arg-type]
