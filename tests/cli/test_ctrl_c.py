"""Ctrl-C on the long commands: a graceful stop, the summary and how to resume, exit 130."""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sippet_async.testing import FakeSippet

KEY = "sk_test_cli_ctrl_c_0123456789"
PHONE = "+1555{:07d}"

pytestmark = pytest.mark.slow  # the command runs in its own process


async def poll_until(condition: Callable[[], bool]) -> None:
    """Return once ``condition()`` holds, looking every 2 ms (another process changes it)."""
    for _ in itertools.count():
        if condition():
            return
        await asyncio.sleep(0.002)


async def _start(server: FakeSippet, *args: str | Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDEVMODE"}
    env["SIPPET_SECRET_KEY"] = KEY
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sippet_async", "--base-url", server.url, *map(str, args),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def _ctrl_c_once(proc: asyncio.subprocess.Process,
                       reached: Callable[[], bool]) -> tuple[int, str]:
    """SIGINT once ``reached()`` holds (a condition on the server or a file: polled, not
    timed); the exit code and standard error."""
    await poll_until(lambda: proc.returncode is not None or reached())
    assert proc.returncode is None, "the command ended before Ctrl-C"
    proc.send_signal(signal.SIGINT)
    _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


async def test_ctrl_c_stops_an_import_which_the_same_command_resumes(tmp_path: Path) -> None:
    """Ctrl-C mid-import: rows in flight finish, summary + journal printed, exit 130; the
    same command then imports the rest, every row once."""
    n = 2000
    data = tmp_path / "contacts.jsonl"
    data.write_text("".join(json.dumps({"fullName": f"P {i}", "phoneE164": PHONE.format(i)})
                            + "\n" for i in range(n)))
    args = ("import", "create_contact", data, "--concurrency", "4",
            "--reconcile-by", "phoneE164")
    async with FakeSippet(KEY, latency=0.005) as server:
        proc = await _start(server, *args)
        code, err = await _ctrl_c_once(proc, lambda: len(server.contacts) >= 100)
        assert code == 130, err
        assert "Traceback" not in err
        assert "INTERRUPTED by SIGINT" in err
        assert " 0 failed, 0 unknown" in err  # in flight finished: nothing cut off
        assert f"journal {data}.journal (run the same command again to resume)" in err
        first = len(server.contacts)
        assert 100 <= first < n

        server.latency = 0.0
        proc = await _start(server, *args)
        _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        assert f"{n - first} succeeded, 0 failed, 0 unknown, {first} skipped" in err.decode()
        phones = collections.Counter(c["phoneE164"] for c in server.contacts)
        assert phones == {PHONE.format(i): 1 for i in range(n)}


async def test_ctrl_c_stops_an_export_which_resume_continues(tmp_path: Path) -> None:
    """Ctrl-C mid-export: the page in hand is written whole, resume hint, exit 130; then
    --resume writes the rest, no record twice."""
    n = 3000
    out = tmp_path / "contacts.jsonl"
    args = ("export", "list_contacts", "--fields", "id,fullName", "--page-size", "10",
            "-o", out)
    async with FakeSippet(KEY, seed_contacts=n, latency=0.005) as server:
        proc = await _start(server, *args)
        code, err = await _ctrl_c_once(proc, lambda: _lines(out) >= 200)
        assert code == 130, err
        assert "Traceback" not in err
        assert "INTERRUPTED by SIGINT" in err
        assert "with --resume to continue" in err
        assert 200 <= _lines(out) < n
        assert out.read_bytes().endswith(b"\n")  # whole pages only

        server.latency = 0.0
        proc = await _start(server, *args, "--resume")
        _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == n
