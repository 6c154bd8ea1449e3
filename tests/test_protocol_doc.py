"""Every protocol section the repository cites is a numbered heading of docs/protocol.md.

Comments, docstrings, guides and wire samples cite rules as ``docs/protocol.md §5.3``, as
``PROTOCOL.md §5.3`` (the older name, until the citations are rewritten), or as a bare
``§5.3`` next to an earlier citation. Each must name a heading such as ``### §5.3 Keyset
pages``, so a citation can never dangle. Section signs of other documents are written with
their source first (``RFC 9110 §5.1``) and are not checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Final, NamedTuple

ROOT: Final = Path(__file__).resolve().parents[1]
DOC: Final = ROOT / "docs" / "protocol.md"
SCANNED: Final = ("sippet_async", "tests", "docs", "benchmarks", "README.md")
SUFFIXES: Final = frozenset({".py", ".pyi", ".md", ".json", ".toml", ".txt", ".yml", ".yaml"})

_SECTION: Final = r"§(\d+(?:\.\d+)*)"
HEADING: Final = re.compile(rf"^#{{1,6}} {_SECTION}\s", re.MULTILINE)
# A citation that names the document, with the sections listed right after it:
# "PROTOCOL.md §3.1, §3.7, §8", "docs/protocol.md §4-§7", "PROTOCOL.md §3.2 to §3.4".
NAMED: Final = re.compile(
    rf"(?:docs/protocol|PROTOCOL)\.md {_SECTION}"
    rf"((?:\s*(?:,|-|\u2013|to|and|or)\s*§\d+(?:\.\d+)*)*)"
)
BARE: Final = re.compile(_SECTION)
# A section sign of another document: "RFC 8259 §8.1", "RFC 9110, §10.2".
FOREIGN: Final = re.compile(r"RFC\s*\d+,?\s*$")


class Citation(NamedTuple):
    path: str
    line: int
    section: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: §{self.section}"


def doc_sections() -> list[str]:
    """The section numbers of docs/protocol.md's headings, in order."""
    return HEADING.findall(DOC.read_text(encoding="utf-8"))


def named_citations(text: str, path: str = "<text>") -> Iterator[Citation]:
    """Sections cited as "docs/protocol.md §N" or "PROTOCOL.md §N" (and the list after it)."""
    for match in NAMED.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        yield Citation(path, line, match.group(1))
        for section in BARE.findall(match.group(2)):
            yield Citation(path, line, section)


def bare_citations(text: str, path: str = "<text>") -> Iterator[Citation]:
    """Every "§N" that does not belong to another document."""
    for match in BARE.finditer(text):
        if FOREIGN.search(text[max(0, match.start() - 24) : match.start()]):
            continue
        yield Citation(path, text.count("\n", 0, match.start()) + 1, match.group(1))


def scanned_files() -> Iterator[Path]:
    """The repository's text files that may cite the protocol (this file excluded: its
    docstrings show the citation forms)."""
    for name in SCANNED:
        top = ROOT / name
        paths = [top] if top.is_file() else sorted(top.rglob("*"))
        for path in paths:
            if (
                path.suffix in SUFFIXES
                and path.is_file()
                and path != Path(__file__).resolve()
                and "__pycache__" not in path.parts
            ):
                yield path


def repository_citations(named_only: bool) -> list[Citation]:
    found: list[Citation] = []
    for path in scanned_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        relative = path.relative_to(ROOT).as_posix()
        found.extend(
            named_citations(text, relative) if named_only else bare_citations(text, relative)
        )
    return found


def dangling(citations: list[Citation], sections: list[str]) -> list[Citation]:
    known = set(sections)
    return [citation for citation in citations if citation.section not in known]


def test_protocol_doc_numbers_each_section_once_under_its_parent() -> None:
    """Headings are numbered §N / §N.M, each number once, each §N.M under an existing §N."""
    sections = doc_sections()
    assert sections, f"{DOC} has no numbered headings"
    duplicates = sorted({s for s in sections if sections.count(s) > 1})
    assert not duplicates, f"section numbers used twice in docs/protocol.md: {duplicates}"
    orphans = [s for s in sections if "." in s and s.rsplit(".", 1)[0] not in sections]
    assert not orphans, f"subsections without their parent section: {orphans}"


def test_every_named_citation_names_a_section_of_protocol_doc() -> None:
    """Each "docs/protocol.md §N" / "PROTOCOL.md §N" in code, tests and docs exists."""
    citations = repository_citations(named_only=True)
    assert citations, "no named citation found: the scan or its pattern is broken"
    missing = dangling(citations, doc_sections())
    assert not missing, "citations of sections docs/protocol.md does not have:\n" + "\n".join(
        map(str, missing)
    )


def test_every_bare_section_sign_names_a_section_of_protocol_doc() -> None:
    """Each bare "§N" (wire samples, comments citing a section nearby) exists too."""
    citations = repository_citations(named_only=False)
    assert len(citations) >= len(repository_citations(named_only=True))
    missing = dangling(citations, doc_sections())
    assert not missing, (
        "§ citations of sections docs/protocol.md does not have (a section of another "
        "document is written with its source first, e.g. 'RFC 9110 §5.1'):\n"
        + "\n".join(map(str, missing))
    )


def test_the_check_finds_a_citation_of_a_missing_section() -> None:
    """A dangling section is reported in every citation form; other documents' are not."""
    sign = "§"  # built here, so this file's own text holds no sample citation
    text = (
        f"see PROTOCOL.md {sign}3.1, {sign}99.2\n"
        f"and docs/protocol.md {sign}12.7 to {sign}12.5\n"
        f"JSON (RFC 8259 {sign}8.1); a bare {sign}41 and {sign}5.\n"
    )
    sections = ["3", "3.1", "5", "12", "12.5"]
    named = list(named_citations(text))
    assert [c.section for c in named] == ["3.1", "99.2", "12.7", "12.5"]
    assert [str(c) for c in dangling(named, sections)] == ["<text>:1: §99.2", "<text>:2: §12.7"]
    bare = list(bare_citations(text))
    assert [c.section for c in dangling(bare, sections)] == ["99.2", "12.7", "41"]
