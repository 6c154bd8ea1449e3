"""The journal: resume skips what is done, resolves what was in flight, survives a torn line."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sippet_async import OutcomeUnknownError, RetryPolicy, SippetClient, UsageError
from sippet_async._jobs._journal import Journal, key_digest
from sippet_async.testing import FakeSippet, Reply

from ._support import (
    ByPhone,
    assert_exactly_one_contact_per_phone,
    client_for,
    contact,
    contacts,
    no_wait,
)

N = 50


async def _run(client: SippetClient, journal: Path, n: int = N, **options: Any) -> list[Any]:
    options.setdefault("fields", ["id"])
    async with client.bulk("create_contact", contacts(n), journal=journal, **options) as job:
        return [o async for o in job]


def _lines(path: Path) -> list[dict[str, Any]]:
    return [msgspec.json.decode(line) for line in path.read_bytes().splitlines()]


async def test_rerun_skips_everything_done(
    client: SippetClient, server: FakeSippet, tmp_path: Path
) -> None:
    """A finished job run again: every item skipped, with its record id, and no request."""
    journal = tmp_path / "contacts.journal"
    first = await _run(client, journal)
    ids = {o.index: o.record_id for o in first}
    server.reset_records()
    again = await _run(client, journal)
    assert sorted(o.index for o in again) == list(range(N))
    assert all(o.status == "skipped" and o.ok for o in again)
    assert {o.index: o.record_id for o in again} == ids
    assert server.requests == []
    assert_exactly_one_contact_per_phone(server, N)


async def test_journal_lines_started_before_final(
    client: SippetClient, tmp_path: Path
) -> None:
    """Each item has a "started" line before its final line, which carries the record id."""
    journal = tmp_path / "j"
    await _run(client, journal, n=10)
    header, *entries = _lines(journal)
    assert header["action"] == "create_contact"
    assert header["sippetJournal"] == 1
    for i in range(10):
        mine = [e for e in entries if e["i"] == i]
        assert [e["s"] for e in mine] == ["started", "succeeded"]
        assert mine[1]["id"]


def _crashed_journal(path: Path, started: range) -> None:
    """A journal as a kill -9 leaves it: "started" lines with no final line."""
    journal = Journal.open(path, action="create_contact")
    for i in started:
        journal.started(i, _key(i))
    journal.close()


def _key(i: int) -> str:
    from sippet_async._jobs._report import default_key

    return default_key(contact(i))


async def test_in_flight_items_are_reconciled_on_resume(
    client: SippetClient, server: FakeSippet, tmp_path: Path
) -> None:
    """Started-but-unfinished items: found ones are not re-sent, missing ones are sent."""
    journal = tmp_path / "j"
    _crashed_journal(journal, range(5))
    for i in range(3):  # items 0-2 reached the server before the crash; 3-4 did not
        await client.run("create_contact", input=contact(i))
    server.reset_records()
    lookup = ByPhone(client)
    outcomes = {o.index: o for o in await _run(client, journal, n=10, reconcile=lookup)}
    assert [outcomes[i].reconciled for i in range(5)] == [True, True, True, False, False]
    assert all(o.status == "succeeded" for o in outcomes.values())
    creates = [r for r in server.requests if r.action == "create_contact"]
    assert len(creates) == 2 + 5  # items 3-4 and the five never started
    assert lookup.calls == 5
    assert_exactly_one_contact_per_phone(server, 10)


async def test_in_flight_items_without_reconcile_stay_unknown(
    client: SippetClient, server: FakeSippet, tmp_path: Path
) -> None:
    """Without reconcile, items in doubt are reported unknown and never re-sent."""
    journal = tmp_path / "j"
    _crashed_journal(journal, range(3))
    outcomes = {o.index: o for o in await _run(client, journal, n=6)}
    assert [outcomes[i].status for i in range(6)] == ["unknown"] * 3 + ["succeeded"] * 3
    assert isinstance(outcomes[0].error, OutcomeUnknownError)
    assert "reconcile=" in str(outcomes[0].error)
    assert len(server.contacts) == 3
    # ... and they stay in doubt for the next run, which may bring a lookup.
    outcomes = {o.index: o for o in await _run(client, journal, n=6)}
    assert [outcomes[i].status for i in range(6)] == ["unknown"] * 3 + ["skipped"] * 3


async def test_failed_items_are_tried_again_on_resume(
    server: FakeSippet, tmp_path: Path
) -> None:
    """An item that failed definitely (it did not execute) is sent again by the next run."""
    journal = tmp_path / "j"
    async with client_for(server, retry=RetryPolicy(attempts=1, sleep=no_wait)) as client:
        server.push_reply(Reply(status=429, headers={"Retry-After": "0"}))
        first = await _run(client, journal, n=3, redrive=False, concurrency=1)
        assert [o.status for o in first] == ["failed", "succeeded", "succeeded"]
        second = {o.index: o.status for o in await _run(client, journal, n=3)}
    assert second == {0: "succeeded", 1: "skipped", 2: "skipped"}
    assert_exactly_one_contact_per_phone(server, 3)


async def test_a_torn_last_line_is_dropped(
    client: SippetClient, server: FakeSippet, tmp_path: Path
) -> None:
    """A last line cut short by a crash is ignored, and the file is clean after the next run."""
    journal = tmp_path / "j"
    await _run(client, journal, n=5)
    with journal.open("ab") as f:
        f.write(b'{"i":5,"k":"abc","s":"succ')
    outcomes = await _run(client, journal, n=8)
    assert sorted((o.index, o.status) for o in outcomes) == [
        *((i, "skipped") for i in range(5)), *((i, "succeeded") for i in range(5, 8))
    ]
    assert all(isinstance(entry, dict) for entry in _lines(journal))  # every line parses
    assert_exactly_one_contact_per_phone(server, 8)


async def test_a_corrupt_line_before_the_last_is_an_error(
    client: SippetClient, tmp_path: Path
) -> None:
    """Garbage in the middle of a journal is not guessed around: UsageError names the line."""
    journal = tmp_path / "j"
    await _run(client, journal, n=3)
    lines = journal.read_bytes().splitlines(keepends=True)
    lines.insert(2, b"garbage\n")
    journal.write_bytes(b"".join(lines))
    with pytest.raises(UsageError, match="line 3 is corrupt"):
        await _run(client, journal, n=3)


async def test_a_journal_of_another_action_is_refused(
    client: SippetClient, tmp_path: Path
) -> None:
    """The header names the action; another job's journal raises UsageError."""
    journal = tmp_path / "j"
    Journal.open(journal, action="create_call").close()
    with pytest.raises(UsageError, match="belongs to a 'create_call' job"):
        await _run(client, journal, n=1)


async def test_a_changed_input_is_refused(client: SippetClient, tmp_path: Path) -> None:
    """Resuming with different items at the same positions raises UsageError, sends nothing."""
    journal = tmp_path / "j"
    await _run(client, journal, n=3)
    changed = [contact(0), contact(7), contact(2)]
    with pytest.raises(UsageError, match="item 1 has key"):
        async with client.bulk("create_contact", changed, journal=journal) as job:
            [o async for o in job]


async def test_not_a_journal_is_refused(client: SippetClient, tmp_path: Path) -> None:
    """A file that is not a journal (e.g. the input itself) raises UsageError."""
    path = tmp_path / "contacts.csv"
    path.write_text("name,phone\nAda,+15550000001\n")
    with pytest.raises(UsageError, match="not a sippet journal"):
        await _run(client, path, n=1)
    assert path.read_text().startswith("name,phone")  # and it was not modified


def test_every_line_reaches_the_file_as_it_is_recorded(tmp_path: Path) -> None:
    """Nothing waits in the process: a kill -9 right after a call loses no recorded line."""
    journal = Journal.open(tmp_path / "j", action="create_contact")
    try:
        journal.started(0, "k0")
        assert b'"s":"started"' in (tmp_path / "j").read_bytes()
        journal.finished(0, "k0", "succeeded", record_id="r0")
        assert (tmp_path / "j").read_bytes().endswith(b'"s":"succeeded","id":"r0"}\n')
    finally:
        journal.close()


def test_one_running_job_per_journal(tmp_path: Path) -> None:
    """A journal held by a running job cannot be opened by another."""
    first = Journal.open(tmp_path / "j", action="create_contact")
    try:
        with pytest.raises(UsageError, match="in use"):
            Journal.open(tmp_path / "j", action="create_contact")
    finally:
        first.close()
    Journal.open(tmp_path / "j", action="create_contact").close()


_STATUSES = st.sampled_from(["started", "succeeded", "failed", "unknown"])
_UUIDS = st.uuids().map(str)


@settings(max_examples=60, deadline=None)
@given(
    entries=st.lists(
        st.tuples(st.integers(0, 30), _STATUSES, st.one_of(st.none(), _UUIDS, st.text())),
        max_size=40,
    ),
    cut=st.integers(0, 10_000),
)
def test_reading_recovers_every_complete_line(
    entries: list[tuple[int, str, str | None]], cut: int
) -> None:
    """For any entries and any crash point, reopening keeps exactly the complete lines."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "j"
        journal = Journal.open(path, action="x")
        for index, status, record_id in entries:
            if status == "started":
                journal.started(index, f"k{index}")
            else:
                journal.finished(index, f"k{index}", status,  # type: ignore[arg-type]
                                 record_id=record_id)
        journal.close()
        data = path.read_bytes()
        header_end = data.index(b"\n") + 1
        cut_at = header_end + cut % (len(data) - header_end + 1)
        os.truncate(path, cut_at)
        complete = data[:cut_at].count(b"\n") - 1  # entries whose newline survived

        expected: dict[int, tuple[str, str | None]] = {}
        for index, status, record_id in entries[:complete]:
            old_id = expected.get(index, (None, None))[1]
            kept = old_id if status == "started" else record_id
            expected[index] = (status, kept)

        reopened = Journal.open(path, action="x")
        try:
            assert reopened.resumed == len(expected)
            for index in range(31):
                previous = reopened.previous(index)
                if index not in expected:
                    assert previous is None
                    continue
                assert previous is not None
                assert (previous.status, previous.record_id) == expected[index]
                assert previous.digest == key_digest(f"k{index}")
        finally:
            reopened.close()
        assert path.read_bytes() == data[:header_end] + b"".join(
            data[header_end:cut_at].splitlines(keepends=True)[:complete]
        )


def test_a_worker_journal_is_looked_up_by_key(tmp_path: Path) -> None:
    """by="key": the last line per key wins, whatever its index; a torn last line is dropped;
    a "started" retry keeps the id recorded before; lines of this run count too."""
    path = tmp_path / "calls.journal"
    journal = Journal.open(path, action="create_call", by="key")
    journal.started(0, "a")
    journal.finished(0, "a", "succeeded", record_id="call-1")
    journal.started(1, "b")
    assert journal.previous_key("b") is not None
    journal.close()
    with path.open("ab") as f:
        f.write(b'{"i":0,"k":"c","s":"succ')  # kill -9 mid-line
    journal = Journal.open(path, action="create_call", by="key")
    a, b = journal.previous_key("a"), journal.previous_key("b")
    assert a is not None
    assert (a.status, a.record_id) == ("succeeded", "call-1")
    assert b is not None
    assert b.status == "started"
    assert journal.previous_key("c") is None
    assert journal.resumed == 2
    journal.started(0, "a")  # index 0 of this run is another request than in the last one
    again = journal.previous_key("a")
    assert again is not None
    assert (again.status, again.record_id) == ("started", "call-1")
    with pytest.raises(UsageError, match="by key"):
        journal.previous(0)
    journal.close()
    assert _lines(path)[0]["by"] == "key"
    with pytest.raises(UsageError, match="call worker's"):
        Journal.open(path, action="create_call")
