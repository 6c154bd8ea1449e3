"""A Griffe extension for the API reference: a docstring's ``Example:`` block is code.

Our docstrings write examples as an indented block under ``Example:`` (readable in
``help()`` and in an editor). The Google-style parser would render that block as a
paragraph and lose its line breaks, so this extension wraps each such block in a fenced
``python`` block before the docstring is parsed. Blocks that are already fenced or written
as doctests (``>>>``) are left as they are.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_HEADING = re.compile(r"^(?P<indent>[ \t]*)(?:Example|Examples):[ \t]*$")


def fence_examples(text: str) -> str:
    """``text`` with every indented block under an ``Example:`` heading fenced as python."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        heading = _HEADING.match(line)
        if heading is None:
            continue
        indent = len(heading["indent"].expandtabs())
        block: list[str] = []
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
        ):
            block.append(lines[i])
            i += 1
        while block and not block[-1].strip():  # trailing blank lines stay outside
            i -= 1
            block.pop()
        body = [b for b in block if b.strip()]
        if not body or body[0].lstrip().startswith(("```", ">>>")):
            out.extend(block)
            continue
        inner = min(len(b) - len(b.lstrip()) for b in body)
        pad = " " * inner
        out.append(pad + "```python")
        out.extend(block)
        out.append(pad + "```")
    return "\n".join(out)


class ExampleCode(griffe.Extension):
    """Fence ``Example:`` blocks (see the module docstring)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_examples(obj.docstring.value)
