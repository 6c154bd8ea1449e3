"""Smoke runs of the request-engine benchmarks at tiny sizes: they run and print figures.

The figures themselves are not asserted (speed targets live in the benchmarks, run by hand).
"""

from __future__ import annotations

import re

import pytest

from ._load import load

pytestmark = pytest.mark.slow  # a benchmark, at tiny sizes


def test_bench_overhead_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    """bench_overhead prints req/s and CPU/request for every client, and the ratios (the
    typed method over client.run included)."""
    assert load("bench_overhead").main(["--tiny"]) == 0
    out = capsys.readouterr().out
    for client in ("client.run", "bare aiohttp", "naive aiohttp", "httpx"):
        assert re.search(re.escape(client) + r"\s+[\d,]+ \(\s*\d+ µs\)\s+[\d,]+ \(", out), out
    assert re.search(r"run / bare\s+\d+\.\d\dx", out), out
    assert "run / naive" in out
    for client in ("run(type=)", "contacts.create"):
        assert re.search(re.escape(client) + r"\s+[\d,]+ \(\s*\d+ µs\)", out), out
    assert re.search(r"typed / run\s+\d+\.\d{3}x", out), out
    assert "sk_test" not in out  # the key never appears in benchmark output


def test_bench_ratelimit_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    """bench_ratelimit prints achieved rate, worst window and 429s for the three limiters."""
    assert load("bench_ratelimit").main(["--tiny"]) == 0
    out = capsys.readouterr().out
    for client in ("sippet_async", "aiolimiter default", "aiolimiter 90%"):
        assert re.search(r"20\s+" + re.escape(client) + r"\s+\d\.\d{3}\s+\d\.\d{3}\s+\d\.\d{3}"
                         r"\s+\d+", out), out
    assert "sk_test" not in out


def test_bench_adaptive_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    """bench_adaptive prints goodput, 429 share, sends in pauses and idle time for both
    clients, and a second-by-second trace (two scenarios: a rolling limit and scripted
    503 pauses; each run starts a server process)."""
    assert load("bench_adaptive").main(["--tiny", "--trace", "--scenarios", "shared,pauses"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"paced /s\s+sent\s+executed\s+429s", out), out
    for scenario in ("shared", "pauses"):
        for client in ("sippet_async", "anchor"):
            # A tiny run is half a second against a per-second limit: ratios can reach 2,
            # and "/ unpaused" far more for the anchor, whose pauses cover most of it.
            figures = r"\s+\d+\.\d{3}" * 3 + r"\s+\d+\.\d%\s+\d+\s+\d+\.\d\d"
            assert re.search(re.escape(scenario) + r"\s+" + re.escape(client) + figures,
                             out), out
    assert "sk_test" not in out
