"""The typed methods are real types: ``mypy --strict`` accepts a user's script that uses
them, and rejects one that mistakes a record's type."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs mypy in another process

HERE = Path(__file__).resolve().parent

MISTAKES = '''\
from sippet_async import Call, CreateContact, SippetClient, UpdateContact


async def wrong(client: SippetClient) -> None:
    call: Call = await client.contacts.get("c1")
    await client.contacts.create(UpdateContact(full_name="Ada"))
    CreateContact(full_name="Ada")
    async for contact in client.contacts.list():
        contact.no_such_field
'''


def _mypy(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--cache-dir", "/dev/null", *map(str, paths)],
        capture_output=True, text=True, check=False, cwd=HERE.parents[1], timeout=300)


def test_user_example_passes_mypy_strict() -> None:
    """tests/typed/user_example.py (a user-style script) type-checks under --strict."""
    result = _mypy(HERE / "user_example.py")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mistakes_are_caught_by_mypy(tmp_path: Path) -> None:
    """A wrong record type, a wrong input Struct, a missing required input field and an
    unknown attribute are each a type error."""
    bad = tmp_path / "mistakes.py"
    bad.write_text(MISTAKES, encoding="utf-8")
    result = _mypy(bad)
    assert result.returncode == 1
    lines = {int(line.split(":")[1]) for line in result.stdout.splitlines()
             if line.startswith(str(bad)) and ": error:" in line}
    assert lines == {5, 6, 7, 9}, result.stdout
