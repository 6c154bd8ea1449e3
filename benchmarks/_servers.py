"""Servers for the benchmarks run in their own process, so client CPU is measured alone."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator, Sequence


@contextlib.contextmanager
def server_process(args: Sequence[str]) -> Iterator[str]:
    """Run ``python *args``, which prints its base URL on its first line; yield that URL."""
    process = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"the benchmark server did not start: {args[:2]}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
