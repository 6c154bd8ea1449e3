"""Print pip constraints that pin every lower bound pyproject.toml declares (``name>=X``
becomes ``name==X``), so CI can run the suite at the oldest versions we promise to support.

Runtime dependencies and every extra are pinned, except the tools that check the code and
build the docs (they do not run in the lowest-versions pass).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

NOT_PINNED = {"ruff", "mypy", "mkdocs-material", "mkdocstrings"}
BOUND = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*>=\s*([^,;\s]+)\s*(;.*)?$")


def main() -> int:
    project = tomllib.loads(Path(sys.argv[1]).read_text())["project"]
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    # An extra made of other extras (``dev`` includes ``sippet_async[test]``) pins nothing.
    own = re.compile(rf"^\s*{re.escape(project['name'])}\[[^\]]*\]\s*$", re.IGNORECASE)
    requirements = [requirement for requirement in requirements if not own.match(requirement)]
    pins: dict[str, str] = {}
    for requirement in requirements:
        match = BOUND.match(requirement)
        if match is None:
            raise SystemExit(f"no lower bound to pin in {requirement!r}: declare one (>=)")
        name, version, marker = match.group(1).lower(), match.group(2), match.group(3) or ""
        if name not in NOT_PINNED:
            pins[name] = f"{name}=={version}{marker}"
    print("\n".join(sorted(pins.values())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
