"""Smoke run of the fleet benchmark at its quick size: it runs and prints every figure.

The figures themselves are not asserted (the targets live in the benchmark, run by hand).
"""

from __future__ import annotations

import re

import pytest

from ._load import load

pytestmark = pytest.mark.slow  # a benchmark, at a small size, with worker processes


def test_bench_fleet_quick(capsys: pytest.CaptureFixture[str]) -> None:
    """bench_fleet prints the shared limit beside R/N, the pauses, the learning fleet and the
    acquire cost."""
    assert load("bench_fleet").main(["--quick", "--trace"]) == 0
    out = capsys.readouterr().out
    for name in ("shared", "each at R/N"):
        assert len(re.findall(rf"  {re.escape(name)}\s+[\d.]+\s+\d+ \([\d.]+%\)\s+[\d.]+",
                              out)) == 1, out
        assert re.search(rf"  {re.escape(name)}\s+\d+\s+\d+\s+\d+\s+[\d.]+ ms\n", out), out
    # round trips per request and dropped slots, for the shared limit only
    assert re.search(r"  shared\s+[\d.]+\s+\d+ \([\d.]+%\)\s+[\d.]+\s+\d\.\d{3}\s+\d+\n", out), out
    # the learning fleet beside each process on its own: the learned rate for the shared one
    assert re.search(r"  shared at 2R\s+[\d.]+\s+[\d.]+\s+\d+ \([\d.]+%\)\s+[\d.]+\s+"
                     r"\d+\.\d{3}\n", out), out
    assert re.search(r"  each at 2R/N\s+[\d.]+\s+[\d.]+\s+\d+ \([\d.]+%\)\s+[\d.]+\s+-\n",
                     out), out
    # --trace: each [learn] run second by second (arrivals, accepted, 429s)
    assert len(re.findall(r"\n +0-1 +\d+ +\d+ +\d+", out)) == 2, out
    assert len(re.findall(r"batch=\d+\s+p50 [\d.]+ ms\s+p99 [\d.]+ ms", out)) == 2, out
    assert "sk_test" not in out  # the key never appears in benchmark output


def test_bench_fleet_rejects_an_unknown_section() -> None:
    """``--only`` names sections; a typo is an error, not an empty run."""
    with pytest.raises(SystemExit):
        load("bench_fleet").main(["--only", "limiterr"])
