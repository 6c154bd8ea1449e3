"""The suite's cross-cutting rules: tests that need a real ``redis-server``, and how a
test runs the ``sippet`` command in-process.

The fleet's tests (``tests/fleet``) and benchmark smoke runs (``test_bench_smoke_fleet*``)
start a throwaway ``redis-server`` (Debian's package). Where it is not installed they are
skipped with a reason that says how to install it, so the README's test command works on a
fresh machine; ``.ci/run`` installs it and sets ``SIPPET_REQUIRE_REDIS=1``, under which a
missing ``redis-server`` fails those tests instead (CI never skips them).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from sippet_async._cli import main

NEEDS_REDIS_DIRS = ("fleet",)
NEEDS_REDIS_MODULES = ("test_bench_smoke_fleet.py", "test_bench_smoke_fleet_calls.py")


def _needs_redis(item: pytest.Item) -> bool:
    path = item.path
    return path.parent.name in NEEDS_REDIS_DIRS or path.name in NEEDS_REDIS_MODULES


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if shutil.which("redis-server") is not None or os.environ.get("SIPPET_REQUIRE_REDIS"):
        return
    skip = pytest.mark.skip(
        reason="redis-server is not installed (Debian: apt-get install redis-server); "
               ".ci/run installs it and never skips these tests")
    for item in items:
        if _needs_redis(item):
            item.add_marker(skip)


@pytest.fixture
def run_cli() -> Callable[[list[str]], int]:
    """Run ``sippet ARGV`` in-process as a shell would: in a thread of its own.

    The command owns its event loop (``asyncio.run``). Run in the test's thread, that would
    replace the loop pytest-asyncio before 1.0 keeps set there and leave that one to the
    garbage collector unclosed (a ResourceWarning under PYTHONDEVMODE, in whichever test the
    collector happens to run). ``SystemExit`` from the parser propagates as usual.
    """
    def run(argv: list[str]) -> int:
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(main, argv).result()
    return run
