"""CallWorker: every request taken gets one outcome, no call is ever placed twice."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sippet_async import (
    AuthenticationError,
    CallWorker,
    Outcome,
    OutcomeUnknownError,
    RetryPolicy,
    SippetClient,
    UsageError,
)
from sippet_async.testing import FakeSippet

from ._support import FAULTS, KEY, call, client_for, no_wait, poll_until

N = 2000


async def _requests(n: int) -> AsyncIterator[dict[str, Any]]:
    for i in range(n):
        yield call(i)


def _calls_per_number(server: FakeSippet) -> collections.Counter[str]:
    return collections.Counter(c["toE164"] for c in server.calls)


def _check_at_most_once(server: FakeSippet, outcomes: dict[str, Outcome[Any]]) -> None:
    """No number called twice; succeeded -> one call, failed -> none, unknown -> one or none."""
    calls = _calls_per_number(server)
    assert not [n for n, k in calls.items() if k > 1], "a call was placed twice"
    for number, outcome in outcomes.items():
        if outcome.status == "succeeded":
            assert calls[number] == 1
        elif outcome.status == "failed":
            assert calls[number] == 0, (number, outcome.error)
        else:
            assert outcome.status == "unknown"
            assert calls[number] <= 1
    assert set(calls) <= set(outcomes)  # nothing placed that was not asked for


async def test_workers_under_faults_place_no_duplicate_calls(
    server: FakeSippet, fast_loop: None
) -> None:
    """2,000 create_call under the fault mix: one outcome each, zero duplicate calls."""
    server.faults = FAULTS
    outcomes: dict[str, Outcome[Any]] = {}

    def record(outcome: Outcome[dict[str, Any]]) -> None:
        number = outcome.item["toE164"]
        assert number not in outcomes
        outcomes[number] = outcome

    async with client_for(server) as client:
        report = await CallWorker(client, record, concurrency=32).run(_requests(N))
    assert len(outcomes) == N == report.total
    _check_at_most_once(server, outcomes)
    statuses = collections.Counter(o.status for o in outcomes.values())
    assert statuses["unknown"] > 0  # 500s and lost replies happened and were not re-sent
    assert all(isinstance(o.error, OutcomeUnknownError)
               for o in outcomes.values() if o.status == "unknown")
    executed = [r for r in server.requests if r.action == "create_call" and r.executed]
    assert len(executed) == len(server.calls)


async def test_workers_with_reconcile_leave_nothing_unknown(
    server: FakeSippet, fast_loop: None
) -> None:
    """With a lookup for unknown outcomes, every call is placed once or definitely not at all."""
    server.faults = FAULTS
    outcomes: dict[str, Outcome[Any]] = {}

    async with client_for(server) as client:

        async def placed(request: dict[str, Any]) -> Any:
            found = await client.run("list_calls", fields=["id", "toE164"],
                                     filter={"toE164": {"eq": request["toE164"]}})
            return found[0] if found else None

        def record(outcome: Outcome[dict[str, Any]]) -> None:
            outcomes[outcome.item["toE164"]] = outcome

        worker = CallWorker(client, record, concurrency=32, reconcile=placed)
        report = await worker.run(_requests(500))
    assert len(outcomes) == 500
    statuses = collections.Counter(o.status for o in outcomes.values())
    assert statuses["unknown"] == 0, statuses  # each doubt was resolved by the lookup
    assert report.reconciled > 0
    # A worker has no redrive pass: a call whose retries ran out (four 429s in a row) is
    # reported failed at once, and was not placed.
    assert statuses["succeeded"] >= 495
    _check_at_most_once(server, outcomes)


async def test_a_queue_source_and_graceful_stop(client: SippetClient,
                                                server: FakeSippet) -> None:
    """From a queue: task_done per outcome; stop() takes no more and drains what was taken."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for i in range(50):
        queue.put_nowait(call(i))
    outcomes: list[Outcome[Any]] = []
    worker: CallWorker[dict[str, Any]]

    async def record(outcome: Outcome[dict[str, Any]]) -> None:
        outcomes.append(outcome)
        if len(outcomes) == 20:
            worker.stop()

    worker = CallWorker(client, record, concurrency=4)
    report = await worker.run(queue)
    taken = 50 - queue.qsize()
    assert 20 <= len(outcomes) == taken < 50
    assert report.total == taken
    assert all(o.ok for o in outcomes)
    assert len(server.calls) == taken
    for _ in range(queue.qsize()):  # what is left is untouched and still joinable
        queue.get_nowait()
        queue.task_done()
    await queue.join()  # every taken request was marked done


async def test_grace_expiry_reports_in_flight_calls_unknown(server: FakeSippet) -> None:
    """stop() with grace=0 on hanging requests: each in flight is reported unknown."""
    outcomes: list[Outcome[Any]] = []
    worker: CallWorker[dict[str, Any]] | None = None

    class StopWhenFull:
        sent = 0

        def on_request(self, action: str, attempt: int) -> None:
            self.sent += 1
            if self.sent == 3 and worker is not None:
                worker.stop()

        def on_retry(self, action: str, attempt: int, cause: str, wait: float) -> None: ...

        def on_response(self, action: str, attempt: int, status: int, elapsed: float) -> None:
            ...

    server.latency = 30.0
    async with client_for(server, hooks=StopWhenFull()) as client:
        worker = CallWorker(client, outcomes.append, concurrency=3, grace=0)
        report = await worker.run(_requests(100))
    assert sorted(o.index for o in outcomes) == [0, 1, 2]
    assert {o.status for o in outcomes} == {"unknown"}
    assert report.interrupted == 3


@pytest.mark.slow
async def test_sigterm_stops_a_worker_process_gracefully(
    server: FakeSippet, fast_loop: None
) -> None:
    """SIGTERM: the process stops taking calls, finishes those in flight, exits 0; no dup."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDEVMODE"}
    env["SIPPET_SECRET_KEY"] = KEY
    server.faults = FAULTS
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).with_name("_worker_job.py")), server.url, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    await poll_until(lambda: proc.returncode is not None or len(server.calls) >= 100)
    proc.send_signal(signal.SIGTERM)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    result = json.loads(out)
    statuses: dict[str, str] = result["outcomes"]
    assert len(statuses) == result["taken"]  # every request taken was reported
    calls = _calls_per_number(server)
    assert not [n for n, k in calls.items() if k > 1]
    assert {n for n, s in statuses.items() if s == "succeeded"} <= set(calls)
    assert not {n for n, s in statuses.items() if s == "failed"} & set(calls)
    assert set(calls) <= set(statuses)


def test_bad_worker_options_raise_usage_error(client: SippetClient) -> None:
    """A non-callable callback or a negative grace is refused up front."""
    with pytest.raises(UsageError, match="on_outcome"):
        CallWorker(client, "print")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="grace"):
        CallWorker(client, print, grace=-1)


async def test_a_worker_runs_once(client: SippetClient) -> None:
    """run() twice on one worker is a UsageError; a source of the wrong type too."""
    worker: CallWorker[dict[str, Any]] = CallWorker(client, lambda o: None)
    with pytest.raises(UsageError, match="source"):
        await worker.run([call(0)])  # type: ignore[arg-type]
    worker = CallWorker[dict[str, Any]](client, lambda o: None)
    await worker.run(_requests(1))
    with pytest.raises(UsageError, match="already"):
        await worker.run(_requests(1))


async def test_a_wrong_key_stops_a_worker_at_once_and_leaves_the_queue(
    server: FakeSippet,
) -> None:
    """Wrong key: at most `concurrency` calls are sent, run() raises the cause, what was not
    taken stays queued; a worker with the right key then places every call exactly once."""
    n, concurrency = 500, 16
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(call(i))
    outcomes: list[Outcome[Any]] = []
    async with SippetClient("sk_test_wrong_key_fedcba9876543210", base_url=server.url,
                            retry=RetryPolicy(sleep=no_wait)) as client:
        worker = CallWorker(client, outcomes.append, concurrency=concurrency)
        with pytest.raises(AuthenticationError):
            async with asyncio.timeout(60):  # a worker that does not stop fails here
                await worker.run(queue)
    assert 0 < len(server.requests) <= concurrency
    assert len(outcomes) == n - queue.qsize()  # every request taken was reported
    assert not any(o.ok for o in outcomes)
    assert all(isinstance(o.error, AuthenticationError) for o in outcomes)
    assert worker.report is not None
    assert isinstance(worker.report.stopped_by, AuthenticationError)
    assert server.calls == []

    for outcome in outcomes:  # none was placed: hand them back, as a caller would
        queue.put_nowait(outcome.item)
    placed: dict[str, Outcome[Any]] = {}
    retry_worker: CallWorker[dict[str, Any]]

    def record(outcome: Outcome[dict[str, Any]]) -> None:
        placed[outcome.item["toE164"]] = outcome
        if len(placed) == n:
            retry_worker.stop()

    async with client_for(server) as client:
        retry_worker = CallWorker(client, record, concurrency=concurrency)
        await retry_worker.run(queue)
    assert {o.status for o in placed.values()} == {"succeeded"}
    assert _calls_per_number(server) == {call(i)["toE164"]: 1 for i in range(n)}
