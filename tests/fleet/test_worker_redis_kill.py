"""`sippet worker` processes on one Redis queue, two SIGKILLed mid-run: no number is
dialled twice and every job ends with an outcome (the fleet harness of the benchmark)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Final

import pytest

pytestmark = pytest.mark.slow  # real worker processes

BENCH: Final = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_fleet_calls.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_bench_fleet_calls_harness", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_two_workers_killed_mid_run() -> None:
    """4 workers, 2 SIGKILLs, 2% of replies lost after commit: <= 1 dial per number,
    0 unresolved, and the kills landed mid-run."""
    result = await _bench().run(jobs=200, workers=4, kills=2, rate=25.0)
    assert result.dialled_twice == 0
    assert result.unresolved == 0
    assert result.dials == 200
    assert result.statuses == {"succeeded": 200}
    assert len(result.killed_at) == 2
    assert all(dials < 200 for dials in result.killed_at), result.killed_at
