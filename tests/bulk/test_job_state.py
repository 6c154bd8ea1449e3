"""The job's one state enum: its table, and the states a real job passes through.

The state is internal (``job._scheduler.state``); each scenario drives it through the
public API (stop, abort, interrupt, aclose) against the fake server and checks both the
state and what the caller sees.
"""

from __future__ import annotations

from typing import Any

import pytest

from sippet_async import BulkJob, OutcomeUnknownError, SippetClient, SippetError
from sippet_async._jobs._state import (
    PULLING,
    REDRIVES,
    SENDING,
    STOP_REQUESTED,
    TRANSITIONS,
    JobEvent,
    JobState,
    next_state,
)
from sippet_async.testing import FakeSippet

from ._support import Counting, assert_one_outcome_per_index, client_for

# Rows: the state before; columns: the event; cells: the state after (docs/design.md).
GRID = """
              INPUT_DONE    STOP          ABORT         INTERRUPT     CLOSE    CLOSED
RUNNING       REDRIVING     STOPPING      ABORTING      INTERRUPTING  CLOSING  RUNNING
REDRIVING     REDRIVING     STOPPING      ABORTING      INTERRUPTING  CLOSING  REDRIVING
STOPPING      STOPPING      STOPPING      ABORTED       INTERRUPTING  CLOSING  STOPPING
ABORTING      ABORTING      ABORTED       ABORTING      INTERRUPTING  CLOSING  ABORTING
ABORTED       ABORTED       ABORTED       ABORTED       INTERRUPTING  CLOSING  ABORTED
INTERRUPTING  INTERRUPTING  INTERRUPTING  INTERRUPTING  INTERRUPTING  CLOSING  INTERRUPTING
CLOSING       CLOSING       CLOSING       CLOSING       CLOSING       CLOSING  CLOSED
CLOSED        CLOSED        CLOSED        CLOSED        CLOSED        CLOSED   CLOSED
"""


def _cells() -> list[tuple[JobState, JobEvent, JobState]]:
    header, *rows = GRID.strip().splitlines()
    events = [JobEvent[name] for name in header.split()]
    cells = []
    for row in rows:
        state, *after = row.split()
        cells += [(JobState[state], event, JobState[a]) for event, a in zip(events, after,
                                                                              strict=True)]
    return cells


@pytest.mark.parametrize(("state", "event", "after"), _cells(),
                         ids=[f"{s.name}-{e.name}" for s, e, _ in _cells()])
def test_the_transition_table(state: JobState, event: JobEvent, after: JobState) -> None:
    """Every (state, event) pair leads where the grid says."""
    assert next_state(state, event) is after


def test_the_grid_covers_every_pair_and_the_table_only_moves() -> None:
    """The grid is complete, and the table lists no pair that leaves the state as it is."""
    assert len(_cells()) == len(JobState) * len(JobEvent)
    assert all(after is not state or state is JobState.CLOSING
               for (state, _), after in TRANSITIONS.items())


def test_what_each_state_allows() -> None:
    """Redriving implies sending and pulling; a stop never pulls; closing allows nothing."""
    assert set(REDRIVES) <= set(SENDING) & set(PULLING)
    assert not set(STOP_REQUESTED) & set(PULLING)
    for state in (JobState.CLOSING, JobState.CLOSED):
        assert state not in {*PULLING, *SENDING, *REDRIVES, *STOP_REQUESTED}


def _state(job: BulkJob[Any]) -> JobState:
    return job._scheduler.state


async def test_stop_while_running(client: SippetClient) -> None:
    """stop(): RUNNING -> STOPPING; what was taken is yielded; CLOSED at the end."""
    items = Counting(200)
    outcomes = []
    async with client.bulk("create_contact", items, concurrency=4) as job:
        assert _state(job) is JobState.RUNNING
        async for outcome in job:
            outcomes.append(outcome)
            if len(outcomes) == 5:
                job.stop()
                job.stop()  # twice is once
                assert _state(job) is JobState.STOPPING
    assert _state(job) is JobState.CLOSED
    assert len(outcomes) == items.pulled < 200
    assert all(o.status == "succeeded" for o in outcomes)


async def test_abort_then_stop(client: SippetClient) -> None:
    """abort() -> ABORTING reads on, reporting not_sent; stop() then -> ABORTED reads no more."""
    items = Counting(200)
    cause = SippetError("enough")
    outcomes = []
    async with client.bulk("create_contact", items, concurrency=4) as job:
        async for outcome in job:
            outcomes.append(outcome)
            if len(outcomes) == 5:
                job.abort(cause)
                assert _state(job) is JobState.ABORTING
            if len(outcomes) == 50:
                job.stop()
                assert _state(job) is JobState.ABORTED
    assert job.stopped_by is cause
    assert 50 <= items.pulled < 200
    assert_one_outcome_per_index(outcomes, items.pulled)
    assert all(o.error is cause for o in outcomes if o.status == "not_sent")


async def test_abort_without_report_unsent_is_abort_and_stop(client: SippetClient) -> None:
    """report_unsent=False: abort() goes straight to ABORTED; the rest stays unread."""
    items = Counting(200)
    outcomes = []
    async with client.bulk("create_contact", items, concurrency=4,
                           report_unsent=False) as job:
        async for outcome in job:
            outcomes.append(outcome)
            if len(outcomes) == 5:
                job.abort(SippetError("enough"))
                assert _state(job) is JobState.ABORTED
    assert len(outcomes) == items.pulled < 200


async def test_interrupt_cuts_off_what_is_in_flight(server: FakeSippet) -> None:
    """interrupt() -> INTERRUPTING (stop() keeps it); in-flight items come back unknown."""
    job: BulkJob[Any] | None = None

    class InterruptOnThirdSend:
        sent = 0

        def on_request(self, action: str, attempt: int) -> None:
            self.sent += 1
            if self.sent == 3 and job is not None:
                job.interrupt()
                job.stop()
                assert _state(job) is JobState.INTERRUPTING

        def on_retry(self, action: str, attempt: int, cause: str, wait: float) -> None: ...

        def on_response(self, action: str, attempt: int, status: int, elapsed: float) -> None:
            ...

    server.latency = 30.0  # every request hangs until interrupted
    async with client_for(server, hooks=InterruptOnThirdSend()) as client:
        job = client.bulk("create_contact", Counting(100), concurrency=3)
        async with job:
            outcomes = [o async for o in job]
            assert _state(job) is JobState.CLOSED  # the end of iteration closes the job
    assert sorted(o.index for o in outcomes) == [0, 1, 2]
    assert all(isinstance(o.error, OutcomeUnknownError) for o in outcomes)


async def test_close_twice_and_events_after_close(client: SippetClient) -> None:
    """Leaving early -> CLOSED, and later aclose/stop/abort/interrupt change nothing."""
    async with client.bulk("create_contact", Counting(100), concurrency=4) as job:
        async for _ in job:
            break
    assert _state(job) is JobState.CLOSED
    await job.aclose()
    job.stop()
    job.abort(SippetError("too late"))
    job.interrupt()
    assert _state(job) is JobState.CLOSED
    assert job.stopped_by is None
    assert [o async for o in job] == []


async def test_a_job_closed_before_it_ran(client: SippetClient, server: FakeSippet) -> None:
    """aclose() before iterating -> CLOSED at once; nothing is read or sent."""
    items = Counting(10)
    job = client.bulk("create_contact", items)
    await job.aclose()
    assert _state(job) is JobState.CLOSED
    assert [o async for o in job] == []
    assert items.pulled == 0
    assert server.requests == []


async def test_stop_before_iterating_reads_nothing(client: SippetClient) -> None:
    """stop() before the first item: STOPPING from the start; no item is taken."""
    items = Counting(10)
    job = client.bulk("create_contact", items)
    job.stop()
    assert _state(job) is JobState.STOPPING
    async with job:
        assert [o async for o in job] == []
    assert items.pulled == 0
