"""Smoke run of the bulk benchmark at tiny sizes: it runs and prints every figure.

The figures themselves are not asserted (speed targets live in the benchmark, run by hand).
"""

from __future__ import annotations

import re

import pytest

from ._load import load

pytestmark = pytest.mark.slow  # a benchmark, at tiny sizes


def test_bench_bulk_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    """bench_bulk prints throughput side by side, rate use with 429s, and RSS per size."""
    assert load("bench_bulk").main(["--tiny"]) == 0
    out = capsys.readouterr().out
    for server in ("minimal local server", "FakeSippet"):
        assert server in out
    assert len(re.findall(r"bare aiohttp loop\s+[\d,]+ creates/s", out)) == 2
    assert len(re.findall(r"client\.bulk\s+[\d,]+ creates/s\s+[\d.]+x bare", out)) == 2
    assert re.search(r"achieved [\d.,]+/s = [\d.]+ of 200 .* 429s: \d+", out), out
    rss = re.findall(r"items: peak\s+[\d.]+ MiB .* all succeeded: (\w+)", out)
    assert rss == ["yes", "yes"], out
    assert "sk_test" not in out  # the key never appears in benchmark output
