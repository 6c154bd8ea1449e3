"""The [otel] extra is optional: ``import sippet_async`` never loads opentelemetry, and
without it ``sippet_async.otel`` says which extra to install."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)


def test_the_client_imports_no_opentelemetry() -> None:
    """``import sippet_async`` (a client with hooks included) loads no opentelemetry module."""
    done = _run("import sys, sippet_async\n"
                "sippet_async.SippetClient('k', hooks=sippet_async.Observer())\n"
                "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_without_the_extra_the_import_names_it() -> None:
    """With opentelemetry missing, ``import sippet_async.otel`` raises an ImportError that
    names the extra to install."""
    done = _run("import sys; sys.modules['opentelemetry'] = None\n"
                "import sippet_async.otel")
    assert done.returncode != 0
    assert 'pip install "sippet_async[otel]"' in done.stderr
