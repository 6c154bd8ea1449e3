"""Honest logs: WARNING only for what the user must act on, not for a doubt later resolved."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sippet_async import CallWorker, Outcome, OutcomeUnknownError, SippetClient
from sippet_async.testing import FakeSippet, Faults

from ._support import call

# Every create_call executes, then its reply is lost: each outcome is unknown to the client.
LOST: Faults = Faults(p_lost_after_commit=1.0, only_actions=frozenset({"create_call"}))


def _levels(caplog: pytest.LogCaptureFixture, text: str) -> list[int]:
    return [r.levelno for r in caplog.records if text in r.getMessage()]


async def _placed(client: SippetClient, request: dict[str, Any]) -> Any:
    found = await client.run("list_calls", fields=["id", "toE164"],
                             filter={"toE164": {"eq": request["toE164"]}})
    return found[0] if found else None


async def test_a_reconciled_call_logs_no_warning(
    client: SippetClient, server: FakeSippet, caplog: pytest.LogCaptureFixture
) -> None:
    """Unknown, then found by reconcile=: the client's line is INFO and nothing is WARNING."""
    server.faults = LOST
    caplog.set_level(logging.DEBUG, logger="sippet_async")
    outcomes: list[Outcome[Any]] = []
    worker = CallWorker(client, outcomes.append,
                        reconcile=lambda request: _placed(client, request))
    await worker.run(_requests(3))
    assert [o.status for o in outcomes] == ["succeeded"] * 3
    assert all(o.reconciled for o in outcomes)
    assert _levels(caplog, "outcome unknown after attempt") == [logging.INFO] * 3
    assert not [r.getMessage() for r in caplog.records
                if r.levelno >= logging.WARNING and r.name.startswith("sippet_async")]


async def test_a_bulk_row_reconciled_logs_no_warning(
    client: SippetClient, server: FakeSippet, caplog: pytest.LogCaptureFixture
) -> None:
    """The same in a bulk job (what `sippet import --reconcile-by` runs)."""
    server.faults = LOST
    caplog.set_level(logging.DEBUG, logger="sippet_async")
    async with client.bulk("create_call", [call(i) for i in range(3)],
                           reconcile=lambda request: _placed(client, request)) as job:
        statuses = [o.status async for o in job]
    assert statuses == ["succeeded"] * 3
    assert job.report.reconciled == 3
    assert not [r.getMessage() for r in caplog.records
                if r.levelno >= logging.WARNING and r.name.startswith("sippet_async")]


async def test_a_call_left_unknown_logs_one_warning(
    client: SippetClient, server: FakeSippet, caplog: pytest.LogCaptureFixture
) -> None:
    """Without reconcile= the call ends unknown: one WARNING per call, naming it."""
    server.faults = LOST
    caplog.set_level(logging.DEBUG, logger="sippet_async")
    outcomes: list[Outcome[Any]] = []
    await CallWorker(client, outcomes.append, concurrency=1).run(_requests(3))
    assert [o.status for o in outcomes] == ["unknown"] * 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert [w.split(" ended unknown")[0] for w in warnings] == [
        f"create_call: item {i}" for i in range(3)]
    assert _levels(caplog, "outcome unknown after attempt") == [logging.INFO] * 3


async def test_a_direct_call_with_an_unknown_outcome_still_warns(
    client: SippetClient, server: FakeSippet, caplog: pytest.LogCaptureFixture
) -> None:
    """Outside a job nothing resolves the doubt: the client's line stays a WARNING."""
    server.faults = LOST
    caplog.set_level(logging.DEBUG, logger="sippet_async")
    with pytest.raises(OutcomeUnknownError):
        await client.run("create_call", input=call(0))
    assert _levels(caplog, "outcome unknown after attempt") == [logging.WARNING]


async def _requests(n: int) -> AsyncIterator[dict[str, Any]]:
    for i in range(n):
        yield call(i)
