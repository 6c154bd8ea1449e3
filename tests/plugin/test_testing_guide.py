"""docs/guides/testing.md runs as printed: its examples, copied verbatim into a fresh project,
pass with pytest-asyncio in strict mode and in auto mode."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

import pytest

pytest_plugins = ["pytester"]

GUIDE: Final = Path(__file__).resolve().parents[2] / "docs" / "guides" / "testing.md"
# A block the suite runs is announced by the comment line just above its fence.
FILE_BLOCK: Final = re.compile(r"<!-- test file: (?P<name>\S+) -->\n```\w+\n(?P<code>.*?)^```",
                               re.M | re.S)
PYTHON_BLOCK: Final = re.compile(r"^(?P<before>.*)\n```python\n", re.M)


def guide_files() -> dict[str, str]:
    """The guide's runnable files, name -> text exactly as printed."""
    files: dict[str, str] = {}
    for block in FILE_BLOCK.finditer(GUIDE.read_text(encoding="utf-8")):
        assert block["name"] not in files, f"two blocks named {block['name']}"
        files[block["name"]] = block["code"]
    return files


def test_every_python_example_is_a_file_the_suite_runs() -> None:
    """No Python block of the guide escapes the run below."""
    loose = [match["before"] for match in PYTHON_BLOCK.finditer(GUIDE.read_text("utf-8"))
             if not match["before"].startswith("<!-- test file: ")]
    assert loose == []
    assert "pyproject.toml" in guide_files()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_the_guide_examples_pass_as_printed(pytester: pytest.Pytester, mode: str) -> None:
    """Written into a fresh project (auto mode: one line added to the printed config)."""
    files = guide_files()
    config = files.pop("pyproject.toml")
    if mode == "auto":
        config = config.replace("[tool.pytest.ini_options]\n",
                                '[tool.pytest.ini_options]\nasyncio_mode = "auto"\n')
    pytester.path.joinpath("pyproject.toml").write_text(config, encoding="utf-8")
    for name, code in files.items():
        pytester.path.joinpath(name).write_text(code, encoding="utf-8")
    counts = {name: len(re.findall(r"^(?:async )?def test_", code, re.M))
              for name, code in files.items()}
    assert all(counts.values()), counts  # each file holds a test, so each one is run
    tests = sum(counts.values())
    result = pytester.runpytest_subprocess("--strict-markers", "-W", "error",
                                           "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines([f"*asyncio: mode=Mode.{mode.upper()}*"])
    result.assert_outcomes(passed=tests)
