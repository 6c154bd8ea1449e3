"""Smoke run of the fleet call-worker benchmark at a tiny size: it runs and prints every figure."""

from __future__ import annotations

import re

import pytest

from ._load import load

pytestmark = pytest.mark.slow  # a benchmark with worker processes, at a tiny size


def test_bench_fleet_calls_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    """Both runs print their row, and every target line is printed."""
    load("bench_fleet_calls").main(["--tiny"])
    out = capsys.readouterr().out
    assert re.search(r"no kills \(work time\)\s+[\d.]+s\s+dials\s+120", out), out
    assert re.search(r"2 SIGKILLs\s+[\d.]+s\s+dials\s+\d+", out), out
    assert re.search(r"naive Streams worker\s+[\d.]+s\s+dials\s+\d+", out), out
    for target in ("at most 1 dial per number", "0 unresolved jobs",
                   "finished within work time + takeover + 2 s"):
        assert f"target: {target}" in out
    assert "sk_test" not in out
