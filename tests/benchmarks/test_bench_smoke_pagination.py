"""Smoke runs of the pagination benchmarks at tiny sizes: they run and print their figures.

The figures themselves are not asserted (speed targets live in the benchmarks, run by hand).
"""

from __future__ import annotations

import re

import pytest

from ._load import load

pytestmark = pytest.mark.slow  # a benchmark, at tiny sizes


def test_bench_decode_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    """bench_decode prints ns/record for every path and both target ratios, then typed
    iteration end to end against the bare aiohttp loop, side by side."""
    assert load("bench_decode").main(["--tiny"]) == 0
    out = capsys.readouterr().out
    for path in ("ours, typed (Contact)", "bare msgspec, same Struct", "msgspec into dicts",
                 "json.loads + dataclasses"):
        assert re.search(re.escape(path) + r"\s+\d+ ns/record", out), out
    assert "ours typed / bare msgspec" in out
    assert "json+dataclasses / ours typed" in out
    for reader in ("client.iter(type=Contact)", "bare aiohttp + Decoder"):
        assert re.search(re.escape(reader) + r"\s+[\d,]+ records/s\s+[\d.]+ µs client CPU",
                         out), out
    assert re.search(r"iter / bare aiohttp, records/s:\s+[\d.]+x", out), out
    assert "sk_test" not in out  # the key never appears in benchmark output


def test_bench_export_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    """bench_export runs all three modes exactly once and measures RSS per size."""
    assert load("bench_export").main(["--tiny"]) == 0
    out = capsys.readouterr().out
    for mode in ("sequential walk", "prefetch (iter)", "concurrency=8"):
        assert re.search(re.escape(mode) + r"\s+[\d,]+ records/s .* exactly once: yes", out), out
    assert len(re.findall(r"records: peak\s+[\d.]+ MiB .* exactly once: yes", out)) == 2
    assert "sk_test" not in out  # the key never appears in benchmark output
