"""The rows of an import file: CSV (with a header) or JSONL, read lazily, one ``Row`` each.

A row that cannot be read (bad JSON, too many CSV values) is still a row: it carries its
``problem`` so the import reports it instead of dropping it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, Literal

import msgspec

from sippet_async._errors import UsageError

__all__ = ["Format", "Row", "check_header", "count_rows", "format_of", "parse_map", "read_rows"]

Format = Literal["csv", "jsonl"]

_FORMATS: Final[dict[str, Format]] = {
    ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
}
_DECODER: Final = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class Row:
    """One data row: where it is in the file, its values, or why it cannot be sent."""

    number: int  # 1-based, data rows only (a CSV header is not a row)
    line: int  # the file line where the row ends
    values: dict[str, Any] | None
    problem: str | None = None


def parse_map(text: str | None) -> dict[str, str] | None:
    """``fullName=name,phoneE164=phone`` -> ``{"fullName": "name", ...}`` (input <- column).

    Raises:
        UsageError: a part without ``=``, an empty name, or an input field given twice.
    """
    if text is None:
        return None
    mapping: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        target, sep, source = part.partition("=")
        target, source = target.strip(), source.strip()
        if not sep or not target or not source:
            raise UsageError(f"--map part {part!r} is not FIELD=COLUMN (e.g. fullName=name)")
        if target in mapping:
            raise UsageError(f"--map names input field {target!r} twice")
        mapping[target] = source
    if not mapping:
        raise UsageError("--map is empty; give FIELD=COLUMN pairs, comma-separated")
    return mapping


def format_of(path: Path, given: str | None) -> Format:
    if given is not None:
        if given not in ("csv", "jsonl"):
            raise UsageError(f"--format must be csv or jsonl, got {given!r}")
        return "csv" if given == "csv" else "jsonl"
    found = _FORMATS.get(path.suffix.lower())
    if found is None:
        raise UsageError(f"cannot tell the format of {path.name}; pass --format csv or jsonl")
    return found


def read_rows(path: Path, format: Format) -> Iterator[Row]:
    """Rows of the file, read lazily; unreadable rows carry their ``problem``.

    Raises:
        UsageError: the file cannot be opened or is not UTF-8.
    """
    try:
        stream = path.open("r", encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    with stream:
        try:
            yield from (_csv_rows(stream) if format == "csv" else _jsonl_rows(stream))
        except UnicodeDecodeError as exc:
            raise UsageError(f"{path} is not UTF-8 text: {exc.reason}") from exc


def _csv_rows(stream: IO[str]) -> Iterator[Row]:
    reader = csv.reader(stream)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise UsageError(f"the CSV header cannot be read: {exc}") from exc
    names = [name.strip() for name in header]
    if not any(names) or len(set(names)) != len(names):
        raise UsageError(f"the CSV header must name each column once, got {header!r}")
    number = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            number += 1
            yield Row(number, reader.line_num, None, f"line {reader.line_num}: {exc}")
            continue
        if not cells or all(not cell.strip() for cell in cells):
            continue  # blank lines are not rows
        number += 1
        if len(cells) > len(names):
            problem = (f"line {reader.line_num}: {len(cells)} values for "
                       f"{len(names)} columns")
            yield Row(number, reader.line_num, dict(zip(names, cells, strict=False)), problem)
            continue
        # Cells are trimmed and empty ones left out: an optional column may be blank, and
        # the server trims strings (so a lookup by a trimmed value finds what it stored).
        values = {name: cell.strip() for name, cell in zip(names, cells, strict=False)
                  if cell.strip()}
        yield Row(number, reader.line_num, values)


def _jsonl_rows(stream: IO[str]) -> Iterator[Row]:
    number = 0
    for line_number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        number += 1
        try:
            value = _DECODER.decode(line)
        except msgspec.DecodeError as exc:
            yield Row(number, line_number, None, f"line {line_number}: not valid JSON: {exc}")
            continue
        if not isinstance(value, dict):
            yield Row(number, line_number, None,
                      f"line {line_number}: expected a JSON object, got {type(value).__name__}")
            continue
        yield Row(number, line_number, value)


def count_rows(path: Path, format: Format) -> int | None:
    """Rows in the file, for the progress bar (only read when a terminal shows it)."""
    try:
        return sum(1 for _ in read_rows(path, format))
    except UsageError:
        return None


def check_header(path: Path, format: Format, mapping: Mapping[str, str] | None) -> None:
    """With ``--map`` on a CSV, every mapped column must exist: say so before any I/O."""
    if mapping is None or format != "csv":
        return
    with path.open("r", encoding="utf-8-sig", newline="") as stream:
        try:
            header = [name.strip() for name in next(csv.reader(stream), [])]
        except (csv.Error, UnicodeDecodeError) as exc:
            raise UsageError(f"the CSV header of {path} cannot be read: {exc}") from exc
    missing = sorted(set(mapping.values()) - set(header))
    if missing:
        raise UsageError(f"--map names column(s) {missing} not in the header of {path.name} "
                         f"({', '.join(header)})")
