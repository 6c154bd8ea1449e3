"""CallWorker with a journal: a worker restarted on the same requests never dials twice."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from sippet_async import BulkJob, CallWorker, Outcome, OutcomeUnknownError, SippetClient, UsageError
from sippet_async._jobs._source import Job
from sippet_async.testing import FakeSippet

from ._support import FAULTS, KEY, call, client_for, interrupt_held, poll_until

JOB = Path(__file__).with_name("_journal_worker_job.py")


async def _requests(n: int) -> AsyncIterator[dict[str, Any]]:
    for i in range(n):
        yield call(i)


def _dials(server: FakeSippet) -> collections.Counter[str]:
    """Calls placed per number (the server's own records)."""
    return collections.Counter(c["toE164"] for c in server.calls)


def _sent(server: FakeSippet) -> collections.Counter[str]:
    """create_call requests that reached the server, per number, executed or not."""
    return collections.Counter(r.json["input"]["toE164"] for r in server.requests
                               if r.action == "create_call")


def _no_duplicates(server: FakeSippet) -> None:
    twice = {number: k for number, k in _dials(server).items() if k > 1}
    assert not twice, f"placed twice: {list(twice.items())[:5]}"


async def _run(client: SippetClient, journal: Path, n: int, *, stop_after: int | None = None,
               **options: Any) -> tuple[dict[str, Outcome[Any]], CallWorker[Any]]:
    outcomes: dict[str, Outcome[Any]] = {}
    worker: CallWorker[dict[str, Any]]

    def record(outcome: Outcome[dict[str, Any]]) -> None:
        number = outcome.item["toE164"]
        assert number not in outcomes
        outcomes[number] = outcome
        if stop_after is not None and len(outcomes) == stop_after:
            worker.stop()

    worker = CallWorker(client, record, concurrency=8, journal=journal, **options)
    await worker.run(_requests(n))
    return outcomes, worker


async def test_a_restarted_worker_skips_what_it_placed(
    client: SippetClient, server: FakeSippet, tmp_path: Path
) -> None:
    """Stopped after 60 of 200, then run again on the same 200: each number placed once."""
    journal = tmp_path / "calls.journal"
    first, _ = await _run(client, journal, 200, stop_after=60)
    assert 60 <= len(first) < 200
    second, worker = await _run(client, journal, 200)
    assert len(second) == 200
    statuses = collections.Counter(o.status for o in second.values())
    assert statuses == {"skipped": len(first), "succeeded": 200 - len(first)}
    assert {n for n, o in second.items() if o.status == "skipped"} == set(first)
    assert worker.report is not None
    assert worker.report.skipped == len(first)
    assert _dials(server) == {call(i)["toE164"]: 1 for i in range(200)}


async def _leave_in_doubt(server: FakeSippet, journal: Path, n: int) -> set[str]:
    """A worker cut off by its grace timer with calls held at the server: those stay
    "started" in the journal (they may have been placed). Returns their numbers."""
    outcomes: list[Outcome[Any]] = []
    server.latency = 3600.0
    worker: CallWorker[dict[str, Any]]

    class StopWhenFull:
        sent = 0

        def on_request(self, action: str, attempt: int) -> None:
            self.sent += 1
            if self.sent == 4:
                worker.stop()

        def on_retry(self, action: str, attempt: int, cause: str, wait: float) -> None: ...

        def on_response(self, action: str, attempt: int, status: int, elapsed: float) -> None:
            ...

    async with client_for(server, hooks=StopWhenFull()) as held:
        worker = CallWorker(held, outcomes.append, concurrency=4, grace=0, journal=journal)
        await worker.run(_requests(n))
    server.latency = 0.0
    assert {o.status for o in outcomes} == {"unknown"}
    return {o.item["toE164"] for o in outcomes}


async def test_in_doubt_without_reconcile_is_unknown_and_never_dialled_again(
    client: SippetClient, server: FakeSippet, tmp_path: Path
) -> None:
    """A call the journal says may have left is reported unknown on restart, not re-sent."""
    journal = tmp_path / "calls.journal"
    doubtful = await _leave_in_doubt(server, journal, 50)
    assert len(doubtful) == 4
    sent_before = _sent(server)
    outcomes, _ = await _run(client, journal, 50)
    for number in doubtful:
        assert outcomes[number].status == "unknown"
        assert isinstance(outcomes[number].error, OutcomeUnknownError)
        assert "earlier run" in str(outcomes[number].error)
    assert _sent(server) - sent_before == {call(i)["toE164"]: 1 for i in range(50)
                                           if call(i)["toE164"] not in doubtful}
    _no_duplicates(server)


async def test_in_doubt_with_reconcile_is_looked_up_then_placed_once(
    client: SippetClient, server: FakeSippet, tmp_path: Path
) -> None:
    """With reconcile=, each call in doubt is looked up first: placed once in all."""
    journal = tmp_path / "calls.journal"
    doubtful = await _leave_in_doubt(server, journal, 50)
    looked_up: list[str] = []

    async def placed(request: dict[str, Any]) -> Any:
        looked_up.append(request["toE164"])
        found = await client.run("list_calls", fields=["id", "toE164"],
                                 filter={"toE164": {"eq": request["toE164"]}})
        return found[0] if found else None

    outcomes, _ = await _run(client, journal, 50, reconcile=placed)
    assert set(looked_up) == doubtful  # only those in doubt cost a lookup
    assert {o.status for o in outcomes.values()} == {"succeeded"}
    assert _dials(server) == {call(i)["toE164"]: 1 for i in range(50)}


async def test_the_same_key_twice_in_one_run_is_placed_once(
    client: SippetClient, server: FakeSippet, tmp_path: Path
) -> None:
    """A key is placed at most once per journal, within a run too; key= tells requests apart."""

    settled = asyncio.Event()

    async def twice() -> AsyncIterator[dict[str, Any]]:
        yield call(0)
        await settled.wait()  # the first is settled before the second is taken
        yield call(0)

    outcomes: list[Outcome[Any]] = []

    def record(outcome: Outcome[dict[str, Any]]) -> None:
        outcomes.append(outcome)
        settled.set()

    worker = CallWorker(client, record, concurrency=1, journal=tmp_path / "calls.journal")
    await worker.run(twice())
    assert [o.status for o in outcomes] == ["succeeded", "skipped"]
    assert _dials(server) == {call(0)["toE164"]: 1}


async def _drain(job: BulkJob[Any]) -> None:
    async with job:
        async for _ in job:
            pass


async def test_a_journal_belongs_to_one_kind_of_job(client: SippetClient,
                                                    tmp_path: Path) -> None:
    """A worker's journal is refused by a bulk job, and a bulk job's by a worker."""
    worker_journal, bulk_journal = tmp_path / "worker.journal", tmp_path / "bulk.journal"
    await _run(client, worker_journal, 2)
    with pytest.raises(UsageError, match="call worker's"):
        await _drain(client.bulk("create_call", [call(0)], journal=worker_journal))
    await _drain(client.bulk("create_call", [call(9)], journal=bulk_journal))
    with pytest.raises(UsageError, match="bulk job's"):
        await _run(client, bulk_journal, 2)


async def test_a_job_source_takes_no_journal(client: SippetClient, tmp_path: Path) -> None:
    """journal= with a JobSource is a usage error: the source keeps the outcomes."""

    class Source:
        def session(self, *, request_timeout: float) -> AbstractAsyncContextManager[None]:
            raise AssertionError("not joined")

        def jobs(self) -> AsyncIterator[Job[Any]]:
            raise AssertionError("not taken")

        async def owns(self, job: Job[Any]) -> bool:
            return True

        async def settle(self, job: Job[Any], outcome: Outcome[Any], *, final: bool) -> None:
            ...

    worker = CallWorker(client, print, journal=tmp_path / "calls.journal")
    with pytest.raises(UsageError, match="JobSource"):
        await worker.run(Source())  # type: ignore[arg-type]


# -- real processes: kill -9 and Ctrl-C ---------------------------------------------------


async def _start(server: FakeSippet, journal: Path, n: int,
                 *extra: str) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDEVMODE"}
    env["SIPPET_SECRET_KEY"] = KEY
    return await asyncio.create_subprocess_exec(
        sys.executable, str(JOB), server.url, str(journal), str(n), *extra, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def _progress(proc: asyncio.subprocess.Process, lines: int) -> None:
    """Read until the process has reported ``lines`` outcomes (or ended)."""
    assert proc.stdout is not None
    seen = 0
    while seen < lines:
        line = await proc.stdout.readline()
        if not line:
            return
        seen += line == b"progress\n"


async def _kill_after(server: FakeSippet, proc: asyncio.subprocess.Process, calls: int) -> None:
    """SIGKILL ``proc`` once the server holds ``calls`` more calls, with new requests held
    at the server so that it dies mid-run, calls in flight."""
    target = len(server.calls) + calls
    await poll_until(lambda: proc.returncode is not None or len(server.calls) >= target)
    code, _, err = await interrupt_held(server, proc, signal.SIGKILL)
    assert code == -signal.SIGKILL, (err or b"").decode()[-2000:]


@pytest.mark.slow
async def test_a_worker_killed_twice_then_restarted_places_no_call_twice(
    server: FakeSippet, fast_loop: None, tmp_path: Path
) -> None:
    """kill -9 twice mid-run, then a run to the end on the same requests: 0 duplicates."""
    n = 600
    server.faults = FAULTS
    journal = tmp_path / "calls.journal"
    seed = int(os.environ.get("SIPPET_TEST_SEED") or int.from_bytes(os.urandom(4)))
    print(f"kill points seeded with SIPPET_TEST_SEED={seed}")
    rng = random.Random(seed)
    for _ in range(2):
        await _kill_after(server, await _start(server, journal, n, "reconcile"),
                          rng.randint(20, 200))
        _no_duplicates(server)

    proc = await _start(server, journal, n, "reconcile")
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    result = json.loads(out.splitlines()[-1])
    statuses = collections.Counter(result["outcomes"].values())
    assert len(result["outcomes"]) == n
    assert set(statuses) <= {"succeeded", "skipped"}, statuses
    assert statuses["skipped"] > 0  # the killed runs' calls were not placed again
    assert _dials(server) == {call(i)["toE164"]: 1 for i in range(n)}


@pytest.mark.slow
async def test_ctrl_c_stops_a_worker_gracefully_and_a_restart_resumes(
    server: FakeSippet, fast_loop: None, tmp_path: Path
) -> None:
    """SIGINT: in-flight calls finish, the summary is printed, exit 130; the next run on the
    same requests places the rest, none twice."""
    n = 400
    journal = tmp_path / "calls.journal"
    proc = await _start(server, journal, n)
    await _progress(proc, 50)
    proc.send_signal(signal.SIGINT)
    out, err = await proc.communicate()
    assert proc.returncode == 130, err.decode()[-2000:]
    assert b"Traceback" not in err
    first = json.loads(out.splitlines()[-1])
    assert 50 <= len(first["outcomes"]) < n
    assert set(first["outcomes"].values()) == {"succeeded"}  # in flight finished: none cut

    proc = await _start(server, journal, n)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    second = json.loads(out.splitlines()[-1])
    assert collections.Counter(second["outcomes"].values()) == {
        "skipped": len(first["outcomes"]), "succeeded": n - len(first["outcomes"])}
    assert _dials(server) == {call(i)["toE164"]: 1 for i in range(n)}
