"""The same job killed with SIGKILL at random points, then resumed: no duplicate, no loss."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import signal
import sys
from pathlib import Path

import msgspec
import pytest

from sippet_async.testing import FakeSippet

from ._support import (
    FAULTS,
    KEY,
    assert_exactly_one_contact_per_phone,
    interrupt_held,
    poll_until,
    size,
)

N = 5000
JOB = Path(__file__).with_name("_job.py")

pytestmark = pytest.mark.slow  # runs the job in other processes


async def _start(server: FakeSippet, journal: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDEVMODE"}
    env["SIPPET_SECRET_KEY"] = KEY
    return await asyncio.create_subprocess_exec(
        sys.executable, str(JOB), server.url, str(journal), str(N), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def _interrupt_when_grown(server: FakeSippet, proc: asyncio.subprocess.Process,
                                journal: Path, grow: int, signum: int) -> int:
    """Send ``signum`` once the journal has grown by ``grow`` bytes (polled, not timed),
    with the server holding new requests so that the job cannot finish first."""
    target = size(journal) + grow
    await poll_until(lambda: proc.returncode is not None or size(journal) >= target)
    code, _, err = await interrupt_held(server, proc, signum)
    assert code != 0, f"the job ended before the signal: {(err or b'').decode()[-2000:]}"
    return code


def _lines_parse(journal: Path) -> bool:
    try:
        for line in journal.read_bytes().splitlines():
            msgspec.json.decode(line)
    except msgspec.DecodeError:
        return False
    return True


async def test_killed_three_times_then_resumed(
    server: FakeSippet, fast_loop: None, tmp_path: Path
) -> None:
    """kill -9 at three random points and one Ctrl-C, then a run to the end: invariants hold."""
    server.faults = FAULTS
    journal = tmp_path / "contacts.journal"
    seed = int(os.environ.get("SIPPET_TEST_SEED") or int.from_bytes(os.urandom(4)))
    print(f"kill points seeded with SIPPET_TEST_SEED={seed}")  # shown when the test fails
    rng = random.Random(seed)
    # A finished item takes ~150 bytes of journal; 5,000 of them ~750 kB. Each run gets
    # 10-120 kB, so the three kills land anywhere in the first half, mid-batch or mid-line.
    for _ in range(3):
        proc = await _start(server, journal)
        code = await _interrupt_when_grown(server, proc, journal,
                                           rng.randint(10_000, 120_000), signal.SIGKILL)
        assert code == -signal.SIGKILL  # it was killed, not finished

    proc = await _start(server, journal)
    code = await _interrupt_when_grown(server, proc, journal, rng.randint(10_000, 60_000),
                                       signal.SIGINT)
    assert code == 130  # Ctrl-C: a clean stop ...
    assert _lines_parse(journal)  # ... that leaves whole lines only

    proc = await _start(server, journal)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    result = json.loads(out)
    statuses = {int(i): s for i, s in result["statuses"].items()}
    assert sorted(statuses) == list(range(N))  # exactly one outcome per index
    counts = collections.Counter(statuses.values())
    assert set(counts) <= {"succeeded", "skipped"}, counts
    assert counts["skipped"] > 0  # the earlier runs' work was not redone
    assert_exactly_one_contact_per_phone(server, N)
    executed = sum(r.executed for r in server.requests if r.action == "create_contact")
    assert executed == N
