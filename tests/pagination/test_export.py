"""The JSONL export job and ``sippet export``: N lines, exactly once, resumable after a crash."""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sippet_async import SippetClient, UsageError
from sippet_async._cli import main
from sippet_async._cli._export import (
    ExportProgress,
    _lines,
    _repair,
    export_jsonl,
    state_path,
    terminal_progress,
)
from sippet_async.testing import FakeSippet

from .conftest import KEY, SEEDED

FIELDS = ["id", "fullName", "tags"]


class Crash(Exception):
    """Stands in for the process dying right after a page was written."""


def read_ids(path: Path) -> list[str]:
    return [msgspec.json.decode(line)["id"] for line in path.read_bytes().splitlines()]


def expected_ids(server: FakeSippet) -> list[str]:
    rows = sorted(server.contacts, key=lambda c: (c["insertedAt"], c["id"]))
    return [c["id"] for c in rows]


async def cli(server: FakeSippet, *args: str) -> int:
    """Run ``sippet`` in-process (its own event loop, in a worker thread)."""
    argv = ["--api-key", KEY, "--base-url", server.url, *args]
    return await asyncio.to_thread(main, argv)


async def crash_after(client: SippetClient, out: Path, pages: int, **options: Any) -> None:
    """Export until ``pages`` pages are written, then die."""
    def progress(state: ExportProgress) -> None:
        if state.pages == pages:
            raise Crash

    with pytest.raises(Crash):
        await export_jsonl(client, "list_contacts", out, fields=FIELDS, page_size=40,
                           progress=progress, **options)


async def test_cli_export_writes_one_line_per_record(server: FakeSippet, tmp_path: Path) -> None:
    """`sippet export` writes N lines, each one JSON object with the selected fields."""
    out = tmp_path / "contacts.jsonl"
    code = await cli(server, "export", "list_contacts", "--fields", "id,fullName,tags",
                     "--page-size", "100", "-o", str(out))
    assert code == 0
    lines = out.read_bytes().splitlines()
    assert len(lines) == SEEDED
    assert read_ids(out) == expected_ids(server)
    assert set(msgspec.json.decode(lines[0])) == {"id", "fullName", "tags"}
    assert not state_path(out).exists()  # removed once complete


async def test_cli_export_in_parallel_is_exactly_once_in_order(server: FakeSippet,
                                                               tmp_path: Path) -> None:
    """--concurrency 4: offset windows, same lines, same order."""
    out = tmp_path / "parallel.jsonl"
    assert await cli(server, "export", "list_contacts", "--fields", "id", "--page-size", "30",
                     "--concurrency", "4", "-o", str(out)) == 0
    assert read_ids(out) == expected_ids(server)
    assert all("offset" in r.json["page"] for r in server.requests)


async def test_cli_export_to_stdout_with_filter(server: FakeSippet,
                                                capfdbinary: pytest.CaptureFixture[bytes]
                                                ) -> None:
    """Without -o the lines go to standard output; --filter and --sort are sent."""
    code = await cli(server, "export", "list_contacts", "--fields", "id,company",
                     "--filter", '{"company": {"eq": "Acme"}}', "--sort=-insertedAt")
    assert code == 0
    out = capfdbinary.readouterr()
    rows = [msgspec.json.decode(line) for line in out.out.splitlines()]
    assert rows
    assert {row["company"] for row in rows} == {"Acme"}
    assert out.err == b""  # stderr is not a terminal: quiet
    assert server.requests[0].json["sort"] == "-insertedAt"


@pytest.mark.parametrize("concurrency", [1, 3])
@pytest.mark.parametrize("extra_lines", [0, 7, 40])
async def test_cli_resume_completes_a_truncated_file(
    client: SippetClient, server: FakeSippet, tmp_path: Path, concurrency: int,
    extra_lines: int,
) -> None:
    """A crash after page 2, then ``extra_lines`` written past the saved state and a torn
    last line: --resume completes the file with every record exactly once."""
    reference = expected_ids(server)
    out = tmp_path / "crashed.jsonl"
    await crash_after(client, out, pages=2, concurrency=concurrency)
    assert len(read_ids(out)) == 80
    full = tmp_path / "full.jsonl"
    await export_jsonl(client, "list_contacts", full, fields=FIELDS, page_size=40)
    complete_lines = full.read_bytes().splitlines(keepends=True)
    with out.open("ab") as file:  # the next page was being written when the process died
        file.writelines(complete_lines[80 : 80 + extra_lines])
        file.write(complete_lines[80 + extra_lines][:25])  # a torn, partial line
    code = await cli(server, "export", "list_contacts", "--fields", ",".join(FIELDS),
                     "--page-size", "40", "--concurrency", str(concurrency), "-o", str(out),
                     "--resume")
    assert code == 0
    assert read_ids(out) == reference
    assert out.read_bytes() == full.read_bytes()
    assert not state_path(out).exists()


async def test_resume_without_state_uses_the_line_count_as_offset(
    client: SippetClient, server: FakeSippet, tmp_path: Path
) -> None:
    """No state file (written by other means): continue at offset = complete lines."""
    out = tmp_path / "nostate.jsonl"
    await crash_after(client, out, pages=3)
    state_path(out).unlink()
    with out.open("ab") as file:
        file.write(b'{"id": "torn')
    server.reset_records()
    result = await export_jsonl(client, "list_contacts", out, fields=FIELDS, page_size=40,
                                resume=True)
    assert read_ids(out) == expected_ids(server)
    assert result.resumed_from == 120
    assert result.written == SEEDED - 120
    assert server.requests[0].json["page"] == {"limit": 40, "offset": 120}


async def test_resume_of_a_missing_file_starts_fresh(client: SippetClient,
                                                     tmp_path: Path) -> None:
    """--resume with no file yet is a plain export (handy for cron jobs)."""
    out = tmp_path / "new.jsonl"
    result = await export_jsonl(client, "list_contacts", out, fields=["id"], resume=True)
    assert result.records == SEEDED
    assert result.resumed_from == 0


async def test_resume_with_other_fields_is_refused(client: SippetClient, server: FakeSippet,
                                                   tmp_path: Path) -> None:
    """A state from an export with other fields is not mixed into the same file."""
    out = tmp_path / "mixed.jsonl"
    await crash_after(client, out, pages=1)
    code = await cli(server, "export", "list_contacts", "--fields", "id", "-o", str(out),
                     "--resume")
    assert code == 2
    assert len(read_ids(out)) == 40  # untouched


async def test_resume_with_another_sort_is_refused(client: SippetClient,
                                                   tmp_path: Path) -> None:
    """The saved token belongs to one listing (action, filter, sort)."""
    out = tmp_path / "sorted.jsonl"
    await crash_after(client, out, pages=1)
    with pytest.raises(UsageError, match="another listing"):
        await export_jsonl(client, "list_contacts", out, fields=FIELDS, sort="-fullName",
                           resume=True)


async def test_cli_resume_needs_an_output_file(server: FakeSippet) -> None:
    """--resume without -o is a usage error (exit 2), before any request."""
    assert await cli(server, "export", "list_contacts", "--fields", "id", "--resume") == 2
    assert server.requests == []


async def test_export_without_resume_overwrites(client: SippetClient, tmp_path: Path) -> None:
    """A new export replaces an old file and forgets its stale state."""
    out = tmp_path / "again.jsonl"
    await crash_after(client, out, pages=1)
    assert state_path(out).exists()
    result = await export_jsonl(client, "list_contacts", out, fields=FIELDS)
    assert result.records == SEEDED
    assert len(read_ids(out)) == SEEDED
    assert not state_path(out).exists()


async def test_progress_is_reported_after_every_page(client: SippetClient) -> None:
    """The progress callback sees records, pages and a rate after each page."""
    seen: list[ExportProgress] = []
    sink = io.BytesIO()
    result = await export_jsonl(client, "list_contacts", sink, fields=["id"], page_size=100,
                                progress=seen.append)
    assert [s.records for s in seen] == [100, 200, 250]
    assert [s.pages for s in seen] == [1, 2, 3]
    assert result.pages == 3
    assert sink.getvalue().count(b"\n") == SEEDED


async def test_stream_export_cannot_resume(client: SippetClient) -> None:
    """Resume needs a file."""
    with pytest.raises(UsageError, match="resume"):
        await export_jsonl(client, "list_contacts", io.BytesIO(), fields=["id"], resume=True)


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([b'{"a":1}', b'{"b":2}'], b'{"a":1}\n{"b":2}\n'),
        ([b'{\n  "a": 1\n}', b'{"b":\r\n2}'], b'{"a":1}\n{"b":2}\n'),
        ([], b""),
    ],
)
def test_lines_are_one_json_object_each(records: Sequence[bytes], expected: bytes) -> None:
    """Raw records keep their bytes unless they hold newlines (then they are compacted)."""
    assert _lines([msgspec.Raw(r) for r in records]) == expected


@pytest.mark.parametrize(
    ("content", "lines", "kept"),
    [(b"", 0, b""), (b"a\nb\n", 2, b"a\nb\n"), (b"a\nb\nc", 2, b"a\nb\n"), (b"abc", 0, b"")],
)
def test_repair_cuts_a_torn_last_line(tmp_path: Path, content: bytes, lines: int,
                                      kept: bytes) -> None:
    """Only complete lines are kept and counted."""
    path = tmp_path / "f.jsonl"
    path.write_bytes(content)
    assert _repair(path) == lines
    assert path.read_bytes() == kept


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_quiet_when_not_a_terminal() -> None:
    """Pipes and files get no progress display."""
    with terminal_progress(io.StringIO()) as progress:
        assert progress is None


def test_progress_uses_rich_on_a_terminal() -> None:
    """On a terminal, rich shows records, records/s and pages."""
    screen = _Terminal()
    with terminal_progress(screen) as progress:
        assert progress is not None
        progress(ExportProgress(records=1234, written=1234, pages=3, elapsed=2.0))
    assert "1,234 records" in screen.getvalue()
    assert "3 pages" in screen.getvalue()


def test_progress_falls_back_to_plain_lines_without_rich(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without rich installed: one plain line per second, on the terminal only."""
    monkeypatch.setitem(sys.modules, "rich.progress", None)
    screen = _Terminal()
    with terminal_progress(screen) as progress:
        assert progress is not None
        progress(ExportProgress(records=500, written=500, pages=1, elapsed=1.0))
        progress(ExportProgress(records=1000, written=1000, pages=2, elapsed=1.1))
    assert screen.getvalue() == "sippet export: 500 records, 500 records/s, 1 pages\n"
