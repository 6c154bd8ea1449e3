"""``sippet import``: rows to requests, rejects with the server's messages, resume, exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from sippet_async import SippetClient, UsageError
from sippet_async._cli._import import (
    RejectLimit,
    Row,
    TooManyRejectsError,
    import_file,
    parse_map,
    parse_max_rejects,
    read_rows,
)
from sippet_async.testing import FakeSippet

from ._support import (
    CLI_FAULTS,
    KEY,
    PHONE,
    assert_exactly_one_contact_per_phone,
    interrupt_held,
    poll_until,
    size,
)

GOOD = 400
MAP = "fullName=name,phoneE164=phone,company=company"


def _write_csv(path: Path) -> None:
    """GOOD good rows, three bad ones among them and a blank line (not a row)."""
    lines = ["name,phone,company"]
    lines += [f"Person {i}, {PHONE.format(i)} ,Acme" for i in range(GOOD)]
    lines.insert(5, "No Phone,,Acme")  # the server says phoneE164 is required
    lines.insert(50, "Bad Phone,12,Acme")  # the server says phoneE164 is invalid
    lines.insert(100, "Too,+15559999999,Many,Values")  # never sent: a CSV problem
    lines.insert(150, "")
    path.write_text("\n".join(lines) + "\n")


async def _sippet(server: FakeSippet, *args: str | Path, key: str = KEY) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDEVMODE"}
    env["SIPPET_SECRET_KEY"] = key
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sippet_async", "--base-url", server.url, *map(str, args),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


def _rejects(path: Path) -> dict[int, dict[str, Any]]:
    return {entry["row"]: entry for entry in map(json.loads, path.read_text().splitlines())}


@pytest.mark.slow
async def test_import_a_csv_with_bad_rows_then_resume(
    server: FakeSippet, fast_loop: None, tmp_path: Path
) -> None:
    """Bad rows go to the rejects file with the server's message; a re-run redoes nothing."""
    server.faults = CLI_FAULTS
    data = tmp_path / "contacts.csv"
    _write_csv(data)
    code, err = await _sippet(server, "import", "create_contact", data, "--map", MAP,
                              "--reconcile-by", "phoneE164")
    assert code == 1, err  # some rows failed
    assert f"{GOOD} succeeded, 3 failed, 0 unknown" in err, err
    assert_exactly_one_contact_per_phone(server, GOOD)

    rejects = _rejects(tmp_path / "contacts.csv.rejects.jsonl")
    assert sorted(rejects) == [5, 50, 100]
    assert rejects[5]["errors"][0]["type"] == "required"
    assert rejects[5]["errors"][0]["fields"] == ["phoneE164"]
    assert rejects[50]["errors"][0]["type"] == "invalid_attribute"
    assert rejects[50]["values"] == {"name": "Bad Phone", "phone": "12", "company": "Acme"}
    assert "4 values for 3 columns" in rejects[100]["error"]
    assert all(entry["status"] == "failed" for entry in rejects.values())

    server.faults = None
    server.reset_records()
    code, err = await _sippet(server, "import", "create_contact", data, "--map", MAP,
                              "--reconcile-by", "phoneE164")
    assert code == 1
    assert f"0 succeeded, 3 failed, 0 unknown, {GOOD} skipped" in err
    creates = [r for r in server.requests if r.action == "create_contact"]
    assert len(creates) == 2  # only the two rows the server rejected were tried again
    assert sorted(_rejects(tmp_path / "contacts.csv.rejects.jsonl")) == [5, 50, 100]


@pytest.mark.slow
async def test_import_killed_and_resumed(
    server: FakeSippet, fast_loop: None, tmp_path: Path
) -> None:
    """kill -9 mid-import, then the same command: every row once, exit 0 when all are good."""
    server.faults = CLI_FAULTS
    data = tmp_path / "contacts.jsonl"
    data.write_text("".join(
        json.dumps({"fullName": f"P {i}", "phoneE164": PHONE.format(i)}) + "\n"
        for i in range(2000)
    ))
    journal = tmp_path / "run.journal"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDEVMODE"}
    env["SIPPET_SECRET_KEY"] = KEY
    args = ["-m", "sippet_async", "--base-url", server.url, "import", "create_contact",
            str(data), "--journal", str(journal), "--reconcile-by", "phoneE164"]
    proc = await asyncio.create_subprocess_exec(sys.executable, *args, env=env,
                                                stderr=asyncio.subprocess.DEVNULL)
    await poll_until(lambda: proc.returncode is not None or size(journal) >= 40_000)
    code, _, _ = await interrupt_held(server, proc, signal.SIGKILL)
    assert code == -signal.SIGKILL  # killed mid-import: the server held it from finishing

    code, err = await _sippet(server, "import", "create_contact", data, "--journal", journal,
                              "--reconcile-by", "phoneE164")
    assert code == 0, err
    assert "0 failed, 0 unknown" in err
    assert "skipped" in err
    assert_exactly_one_contact_per_phone(server, 2000)
    assert not (tmp_path / "contacts.jsonl.rejects.jsonl").exists()


@pytest.mark.slow
async def test_jsonl_lines_that_are_not_objects_are_rejected(
    server: FakeSippet, tmp_path: Path
) -> None:
    """Invalid JSON and non-objects become rejects with their line; the rest is imported."""
    data = tmp_path / "rows.jsonl"
    data.write_text(
        '{"fullName": "A", "phoneE164": "+15550000001"}\n'
        "{not json\n"
        "\n"
        "[1, 2]\n"
        '{"fullName": "B", "phoneE164": "+15550000002"}\n'
    )
    rejects = tmp_path / "bad.jsonl"
    code, _err = await _sippet(server, "import", "create_contact", data, "--rejects", rejects)
    assert code == 1
    entries = _rejects(rejects)
    assert sorted(entries) == [2, 3]
    assert entries[2]["line"] == 2
    assert "not valid JSON" in entries[2]["error"]
    assert entries[3]["line"] == 4
    assert "expected a JSON object" in entries[3]["error"]
    assert sorted(c["fullName"] for c in server.contacts) == ["A", "B"]


@pytest.mark.slow
async def test_usage_errors_exit_2_before_any_request(
    server: FakeSippet, tmp_path: Path
) -> None:
    """A --map column missing from the header, or an unknown format: exit 2, nothing sent."""
    data = tmp_path / "contacts.csv"
    _write_csv(data)
    code, err = await _sippet(server, "import", "create_contact", data, "--map",
                              "fullName=nme,phoneE164=phone")
    assert code == 2
    assert "['nme'] not in the header" in err
    other = tmp_path / "contacts.txt"
    other.write_text("x")
    code, err = await _sippet(server, "import", "create_contact", other)
    assert code == 2
    assert "--format" in err
    code, err = await _sippet(server, "import", "create_contact", data, "--reconcile-by",
                              "phoneE164", "--journal", data)
    assert code == 2
    assert "not a sippet journal" in err
    code, err = await _sippet(server, "import", "create_contact", data, "--max-rejects", "5x")
    assert code == 2
    assert "--max-rejects" in err
    assert server.requests == []


async def test_import_file_in_process_with_progress(
    client: SippetClient, server: FakeSippet, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """import_file (what the CLI and the demo call) with the live display on: ok, all rows."""
    data = tmp_path / "c.csv"
    data.write_text("fullName,phoneE164\n" + "".join(f"P {i},{PHONE.format(i)}\n"
                                                    for i in range(30)))
    result = await import_file(client, "create_contact", data, progress=True)
    assert result.ok
    assert result.rejected == 0
    assert result.rejects is None
    assert result.report.succeeded == 30
    assert result.journal == tmp_path / "c.csv.journal"
    assert "30/30" in capsys.readouterr().err


def test_parse_map() -> None:
    """FIELD=COLUMN pairs; malformed ones are UsageErrors naming the part."""
    assert parse_map("fullName=name, phoneE164 = phone") == {"fullName": "name",
                                                             "phoneE164": "phone"}
    assert parse_map(None) is None
    for bad in ("fullName", "=name", "a=b,a=c", ","):
        with pytest.raises(UsageError):
            parse_map(bad)


def test_csv_rows_are_trimmed_and_blank_cells_left_out(tmp_path: Path) -> None:
    """Cells are trimmed, empty ones omitted, blank lines skipped, rows numbered from 1."""
    data = tmp_path / "c.csv"
    data.write_text('\ufeffname,phone,note\n Ada , +1555 ,\n\n"Multi\nline",+2,x\n')
    rows = list(read_rows(data, "csv"))
    assert rows == [
        Row(1, 2, {"name": "Ada", "phone": "+1555"}),
        Row(2, 5, {"name": "Multi\nline", "phone": "+2", "note": "x"}),
    ]


@pytest.mark.slow
async def test_a_wrong_key_import_of_20000_rows_stops_at_once_then_resumes(
    server: FakeSippet, fast_loop: None, tmp_path: Path
) -> None:
    """Issue 10 item 8: at most one window of requests, exit 3 naming the authentication
    failure, the untouched rows not sent; the same command with the right key sends every
    row exactly once."""
    n = 20_000
    data = tmp_path / "contacts.jsonl"
    data.write_text("".join(
        json.dumps({"fullName": f"P {i}", "phoneE164": PHONE.format(i)}) + "\n"
        for i in range(n)
    ))
    code, err = await _sippet(server, "import", "create_contact", data,
                              key="sk_test_wrong_key_fedcba9876543210")
    sent = len(server.requests)
    assert 0 < sent <= 64  # --concurrency defaults to 64
    assert code == 3, err
    assert "STOPPED by AuthenticationError" in err
    assert f"{n - sent} not sent" in err
    assert "sk_test_wrong_key" not in err
    rejects = _rejects(tmp_path / "contacts.jsonl.rejects.jsonl")
    assert len(rejects) == sent  # the rows in flight; rows not sent are counted, not listed
    assert all(entry["error"].startswith("AuthenticationError") for entry in rejects.values())
    assert server.contacts == []

    server.reset_records()
    code, err = await _sippet(server, "import", "create_contact", data)
    assert code == 0, err
    assert f"{n} succeeded, 0 failed, 0 unknown, 0 skipped, 0 not sent" in err
    assert len(server.requests) == n
    assert_exactly_one_contact_per_phone(server, n)


@pytest.mark.slow
@pytest.mark.parametrize(("limit", "allowed"), [("10", 10), ("5%", 20)])
async def test_max_rejects_stops_an_import_whose_rows_fail(
    server: FakeSippet, tmp_path: Path, limit: str, allowed: int
) -> None:
    """Every row is rejected (no phone): the import stops past the limit, exit 4; the rows
    after the stop are not sent and are reported with the cause."""
    data = tmp_path / "contacts.csv"
    data.write_text("name,phone\n" + "".join(f"Person {i},\n" for i in range(400)))
    code, err = await _sippet(server, "import", "create_contact", data, "--concurrency", "4",
                              "--max-rejects", limit)
    assert code == 4, err
    assert "STOPPED by TooManyRejectsError" in err
    sent = len(server.requests)
    assert allowed < sent <= allowed + 1 + 2 * 4  # + what ran ahead of the count
    assert len(_rejects(tmp_path / "contacts.csv.rejects.jsonl")) == sent
    assert f"{400 - sent} not sent" in err


@pytest.mark.slow
async def test_max_rejects_not_reached_lets_the_import_finish(
    server: FakeSippet, tmp_path: Path
) -> None:
    """Three rejects within --max-rejects 1% of 403 rows: the job runs to the end, exit 1."""
    data = tmp_path / "contacts.csv"
    _write_csv(data)
    code, err = await _sippet(server, "import", "create_contact", data, "--map", MAP,
                              "--max-rejects", "1%")
    assert code == 1, err
    assert f"{GOOD} succeeded, 3 failed, 0 unknown, 0 skipped, 0 not sent" in err


async def test_import_file_reports_the_stop_on_its_result(
    server: FakeSippet, tmp_path: Path
) -> None:
    """In process: max_rejects=0 stops at the first reject; the result names the cause."""
    data = tmp_path / "c.jsonl"
    data.write_text('{"fullName": "No Phone"}\n' + "".join(
        json.dumps({"fullName": f"P {i}", "phoneE164": PHONE.format(i)}) + "\n"
        for i in range(50)
    ))
    async with SippetClient(KEY, base_url=server.url) as client:
        result = await import_file(client, "create_contact", data, concurrency=1,
                                   max_rejects=0)
    assert isinstance(result.stopped_by, TooManyRejectsError)
    assert result.stopped_by.limit == 0
    assert not result.ok
    assert (result.rejected, result.report.not_sent) == (1, 50)
    assert len(server.requests) == 1


def test_parse_max_rejects() -> None:
    """A count or a percentage of the file's rows; anything else is a UsageError."""
    assert parse_max_rejects(None) is None
    assert parse_max_rejects("25") == RejectLimit(count=25)
    assert parse_max_rejects(0) == RejectLimit(count=0)
    assert parse_max_rejects(" 2.5% ") == RejectLimit(percent=2.5)
    assert RejectLimit(percent=2.5).allowed(1000) == 25
    assert RejectLimit(count=7).allowed(1000) == 7
    for bad in ("-1", "5x", "", "101%", "nan%", "-1%", -3):
        with pytest.raises(UsageError, match="--max-rejects"):
            parse_max_rejects(bad)


@pytest.mark.slow
async def test_an_unreachable_server_fails_the_rows_after_redrive_wait(tmp_path: Path) -> None:
    """Nothing listens at the base URL: the rows wait --redrive-wait for an answer, then
    are reported failed with that cause (exit 1); none is lost, and the journal resends
    them on the next run."""
    data = tmp_path / "contacts.jsonl"
    data.write_text("".join(
        json.dumps({"fullName": f"P {i}", "phoneE164": PHONE.format(i)}) + "\n"
        for i in range(300)
    ))
    with socket.socket() as closed:  # bound, never listening: every connection is refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDEVMODE"}
        env["SIPPET_SECRET_KEY"] = KEY
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sippet_async", "--base-url", f"http://127.0.0.1:{port}",
            "import", "create_contact", str(data), "--redrive-wait", "0.5",
            env=env, stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
    assert proc.returncode == 1, err.decode()
    rejects = _rejects(tmp_path / "contacts.jsonl.rejects.jsonl")
    assert sorted(rejects) == list(range(1, 301))  # every row, reported
    unreachable = [e for e in rejects.values() if "stayed unreachable for 0.5s" in e["error"]]
    assert unreachable, list(rejects.values())[:3]
