"""Smoke run of the outage benchmark at a tiny size: it runs and prints every figure.

The figures themselves are not asserted (the targets live in the benchmark, run by hand).
"""

from __future__ import annotations

import re

import pytest

from ._load import load

pytestmark = pytest.mark.slow  # a benchmark, at tiny sizes


def test_bench_outage_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    """bench_outage prints one row per run, the three targets and the server's count."""
    assert load("bench_outage").main(["--tiny"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"without an outage: [\d.]+s", out), out
    assert re.search(r"^\s+1(\s+\d+){5}\s+[\d.]+s\s+[-+][\d.]+s", out, re.M), out
    for target in ("connection attempts while down", "HTTP attempts sent while down",
                   "failed:", "time lost beyond the outage"):
        assert target in out
    assert re.search(r"server: [\d,]+ contacts, 0 phones duplicated", out), out
    assert "sk_test" not in out  # the key never appears in benchmark output
