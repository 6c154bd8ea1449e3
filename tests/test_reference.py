"""The API reference (docs/reference.md) is complete: every public name of every public
module is documented there, and nothing else is; its examples render as code."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference.md"
# The public modules: each one's __all__ is its public surface.
PUBLIC_MODULES = ("sippet_async", "sippet_async.testing", "sippet_async.redis",
                  "sippet_async.otel")
# Named in the page's text instead of an entry of its own.
IN_TEXT = {"sippet_async.__version__"}
# Modules documented whole (their docstring says how to use them).
MODULES = {"sippet_async.testing.pytest_plugin"}


def _entries() -> list[str]:
    return re.findall(r"^::: ([\w.]+)$", REFERENCE.read_text(encoding="utf-8"), re.MULTILINE)


def _public() -> set[str]:
    names = set()
    for module in PUBLIC_MODULES:
        names |= {f"{module}.{name}" for name in importlib.import_module(module).__all__}
    return (names - IN_TEXT) | MODULES


def test_every_public_name_has_an_entry() -> None:
    missing = sorted(_public() - set(_entries()))
    assert not missing, f"public names missing from docs/reference.md: {missing}"


def test_every_entry_is_a_public_name_once() -> None:
    entries = _entries()
    assert len(entries) == len(set(entries)), "an entry appears twice"
    stray = sorted(set(entries) - _public())
    assert not stray, f"docs/reference.md documents names that are not public: {stray}"


def test_the_version_is_named_in_the_text() -> None:
    assert "`__version__`" in REFERENCE.read_text(encoding="utf-8")


@pytest.fixture
def fence_examples():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    try:
        from examples import fence_examples

        yield fence_examples
    finally:
        sys.path.remove(str(ROOT / "docs" / "_ext"))
        sys.modules.pop("examples", None)


@pytest.mark.docs
def test_an_example_block_is_fenced_as_python(fence_examples) -> None:  # type: ignore[no-untyped-def]
    text = "Summary.\n\nExample:\n    async with x:\n        y()\n\nRaises:\n    E: why."
    assert fence_examples(text) == (
        "Summary.\n\nExample:\n    ```python\n    async with x:\n        y()\n    ```\n\n"
        "Raises:\n    E: why."
    )


@pytest.mark.docs
def test_fenced_and_doctest_examples_are_left_alone(fence_examples) -> None:  # type: ignore[no-untyped-def]
    doctest = "Example:\n    >>> 1 + 1\n    2"
    fenced = "Examples:\n    ```python\n    x = 1\n    ```"
    assert fence_examples(doctest) == doctest
    assert fence_examples(fenced) == fenced
