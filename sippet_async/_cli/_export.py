"""The JSONL export job behind ``sippet export``: every record of a list action, one JSON
object per line, resumable after a crash.

Records are never parsed: pages are decoded with ``msgspec.Raw`` records, so each line is
the record's bytes exactly as the server sent them (camelCase keys, §8).

Resume works from a small state file next to the output (``<out>.resume.json``), replaced
atomically after each page has been written and flushed: it holds the number of complete
lines and the walk's resume token at that point. On ``resume=True`` a torn last line is cut
off, and the walk continues from the saved token advanced by any lines written after the
last state update, so no record is written twice. Without a state file (e.g. the export
had finished, or was made by something else) the file's line count is used as an offset.
The state file is removed when the export completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final, TextIO

import msgspec

from sippet_async._cli._signals import Interrupts
from sippet_async._errors import UsageError
from sippet_async._walk import ResumeToken

if TYPE_CHECKING:
    from sippet_async._client import SippetClient

__all__ = [
    "DEFAULT_EXPORT_PAGE_SIZE",
    "ExportProgress",
    "ExportResult",
    "export_jsonl",
    "state_path",
    "terminal_progress",
]

# Fewer, larger pages for bulk reads; a server with a lower max page size clamps it and
# the walk follows (docs/protocol.md §5.1).
DEFAULT_EXPORT_PAGE_SIZE: Final = 500
STATE_SUFFIX: Final = ".resume.json"
_STATE_VERSION: Final = 1
_SCAN_CHUNK: Final = 1 << 20
_PLAIN_EVERY: Final = 1.0  # seconds between plain progress lines (no rich installed)


class _State(msgspec.Struct, kw_only=True):
    """What ``<out>.resume.json`` holds."""

    version: int = _STATE_VERSION
    action: str
    fields: list[Any]
    lines: int
    token: str


_STATE_DECODER: Final = msgspec.json.Decoder(_State)


@dataclass(frozen=True, slots=True)
class ExportProgress:
    """Reported after each page: ``records`` in the file, ``written`` by this run."""

    records: int
    written: int
    pages: int
    elapsed: float

    @property
    def rate(self) -> float:
        """Records written per second by this run."""
        return self.written / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True, slots=True)
class ExportResult:
    """How an export ended: ``records`` lines in the file, ``resumed_from`` of them kept
    from an earlier run, ``written`` by this one."""

    records: int
    written: int
    pages: int
    elapsed: float
    resumed_from: int = 0
    signalled: signal.Signals | None = None  # stopped early by it (Ctrl-C: SIGINT)

    @property
    def complete(self) -> bool:
        """Every record is in the file (else ``resume=True`` continues it)."""
        return self.signalled is None


def state_path(out: str | os.PathLike[str]) -> Path:
    """Where the resume state of an export to ``out`` is kept."""
    path = Path(out)
    return path.with_name(path.name + STATE_SUFFIX)


async def export_jsonl(
    client: SippetClient,
    action: str,
    out: str | os.PathLike[str] | BinaryIO,
    *,
    fields: Sequence[str | Mapping[str, Any]],
    filter: Mapping[str, Any] | None = None,
    sort: str | Sequence[str] | None = None,
    input: Mapping[str, Any] | None = None,
    page_size: int | None = DEFAULT_EXPORT_PAGE_SIZE,
    concurrency: int = 1,
    resume: bool = False,
    progress: Callable[[ExportProgress], None] | None = None,
    stop_signals: Sequence[signal.Signals] = (),
) -> ExportResult:
    """Write every record of ``action`` to ``out`` as JSON Lines.

    Args:
        out: a file path, or a binary stream (e.g. ``sys.stdout.buffer``; no resume).
        concurrency: offset pages fetched at once (see ``SippetClient.iter`` for the
            consistency trade-off).
        resume: continue a partial file at ``out`` instead of overwriting it.
        progress: called after each page.
        stop_signals: on the first (the command passes Ctrl-C and SIGTERM), stop after the
            page being fetched is written, keeping the resume state (``signalled`` on the
            result); the second acts as if they were not handled.

    Example:
        result = await export_jsonl(client, "list_contacts", "contacts.jsonl",
                                    fields=["id", "fullName"], resume=True)
        print(result.records, "records")

    Raises:
        UsageError: ``resume`` with a stream, or a state file from another export.
    """
    started = time.perf_counter()
    sink: _FileSink | _StreamSink
    if isinstance(out, str | os.PathLike):
        sink = await asyncio.to_thread(_FileSink.open, Path(out), action, list(fields), resume)
    else:
        if resume:
            raise UsageError("resume needs an output file, not a stream")
        sink = _StreamSink(out)
    written = pages = 0
    interrupts = Interrupts(stop_signals, _between_pages)
    try:
        records = client.iter(action, fields=fields, filter=filter, sort=sort, input=input,
                              page_size=page_size, concurrency=concurrency,
                              resume=sink.token, type=msgspec.Raw)
        with interrupts:
            async with records:
                async for page in records.pages():
                    blob = _lines(page.results)
                    await asyncio.to_thread(sink.write, blob, len(page.results),
                                            page.resume_token)
                    written += len(page.results)
                    pages += 1
                    if progress is not None:
                        progress(ExportProgress(sink.lines, written, pages,
                                                time.perf_counter() - started))
                    if interrupts.signum is not None:  # the page is written and on record
                        break
        if interrupts.signum is None:
            await asyncio.to_thread(sink.finish)
    finally:
        await asyncio.to_thread(sink.close)
    return ExportResult(records=sink.lines, written=written, pages=pages,
                        elapsed=time.perf_counter() - started, resumed_from=sink.resumed_from,
                        signalled=interrupts.signum)


def _between_pages() -> None:
    """A stop signal is read after each page is written (``Interrupts.signum``)."""


def _lines(records: Sequence[msgspec.Raw]) -> bytes:
    """One record per line. Raw JSON may hold insignificant newlines; re-encode those."""
    if not records:
        return b""
    blob = b"\n".join(records) + b"\n"  # Raw supports the buffer protocol
    if blob.count(b"\n") == len(records) and b"\r" not in blob:
        return blob
    compact = [msgspec.json.encode(msgspec.json.decode(raw)) for raw in records]
    return b"\n".join(compact) + b"\n"


class _StreamSink:
    """Lines to a caller's stream; no resume state."""

    token: ResumeToken | None = None
    resumed_from = 0

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.lines = 0

    def write(self, blob: bytes, count: int, _token: ResumeToken) -> None:
        self._stream.write(blob)
        self._stream.flush()
        self.lines += count

    def finish(self) -> None:
        """Nothing to clean up."""

    def close(self) -> None:
        """The stream belongs to the caller."""


class _FileSink:
    """Lines to a file plus its resume state, updated after every page."""

    def __init__(self, path: Path, file: BinaryIO, action: str, fields: list[Any],
                 lines: int, token: ResumeToken | None) -> None:
        self._path = path
        self._state = state_path(path)
        self._file = file
        self._action = action
        self._fields = fields
        self.lines = lines
        self.resumed_from = lines
        self.token = token

    @classmethod
    def open(cls, path: Path, action: str, fields: list[Any], resume: bool) -> _FileSink:
        """Open ``path``: truncated, or (``resume``) repaired and positioned after its last
        complete line, with the token to continue from."""
        state_file = state_path(path)
        if not resume or not path.exists():
            file = path.open("wb")
            state_file.unlink(missing_ok=True)
            return cls(path, file, action, fields, 0, None)
        lines = _repair(path)
        token = _resume_token(state_file, action, fields, lines)
        return cls(path, path.open("ab"), action, fields, lines, token)

    def write(self, blob: bytes, count: int, token: ResumeToken) -> None:
        """Append one page, then record where the walk stands (data first, state second)."""
        self._file.write(blob)
        self._file.flush()
        self.lines += count
        state = _State(action=self._action, fields=self._fields, lines=self.lines,
                       token=str(token))
        scratch = self._state.with_name(self._state.name + ".tmp")
        scratch.write_bytes(msgspec.json.encode(state))
        os.replace(scratch, self._state)  # atomic: the old state or the new, never half

    def finish(self) -> None:
        """The export is complete: the resume state is no longer needed."""
        self._file.flush()
        self._state.unlink(missing_ok=True)

    def close(self) -> None:
        self._file.close()


def _repair(path: Path) -> int:
    """Cut a torn last line off ``path`` and return how many complete lines remain."""
    lines = 0
    end = 0  # offset just past the last newline
    with path.open("r+b") as file:
        position = 0
        while chunk := file.read(_SCAN_CHUNK):
            found = chunk.count(b"\n")
            if found:
                lines += found
                end = position + chunk.rindex(b"\n") + 1
            position += len(chunk)
        if end != position:
            file.truncate(end)
    return lines


def _resume_token(state_file: Path, action: str, fields: list[Any], lines: int
                  ) -> ResumeToken | None:
    """The position after ``lines`` records, from the saved state (or the line count)."""
    if not state_file.exists():
        # No state: the file was completed, or written by other means. Its line count is
        # the only position known, which only offset pages can use (§5.1 rule 1).
        return ResumeToken("offset", offset=lines) if lines else None
    try:
        state = _STATE_DECODER.decode(state_file.read_bytes())
        token = ResumeToken.parse(state.token)
    except (msgspec.DecodeError, UsageError) as exc:
        raise UsageError(f"cannot resume: {state_file} is not a valid resume state") from exc
    if state.action != action or state.fields != fields:
        raise UsageError(
            f"cannot resume: {state_file} belongs to an export of {state.action} with fields "
            f"{state.fields}; rerun with the same action and fields, or without --resume"
        )
    if lines < state.lines:
        raise UsageError(
            f"cannot resume: the file has {lines} complete lines but its state says "
            f"{state.lines}; it was changed since, so rerun without --resume"
        )
    # Lines written after the last state update (a crash between the two) are kept.
    return token.advanced(lines - state.lines)


Progress = Callable[[ExportProgress], None]


@contextlib.contextmanager
def terminal_progress(stream: TextIO) -> Iterator[Progress | None]:
    """A progress display on ``stream`` while the block runs: records, records/s, pages.

    Only when ``stream`` is a terminal (None otherwise: scripts and pipes stay quiet). It
    uses ``rich`` when installed (the ``progress`` extra), else a plain line per second.
    """
    if not stream.isatty():
        yield None
        return
    try:
        from rich.console import Console
        from rich.progress import Progress as RichProgress
        from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn
    except ImportError:
        yield _plain_progress(stream)
        return
    display = RichProgress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TextColumn("{task.completed:,.0f} records"),
        TextColumn("{task.fields[rate]:,.0f} records/s"),
        TextColumn("{task.fields[pages]:,} pages"),
        TimeElapsedColumn(),
        console=Console(file=stream),
        transient=False,
    )
    task = display.add_task("export", total=None, rate=0.0, pages=0)

    def update(state: ExportProgress) -> None:
        display.update(task, completed=state.records, rate=state.rate, pages=state.pages)

    with display:
        yield update


def _plain_progress(stream: TextIO) -> Progress:
    last = 0.0

    def update(state: ExportProgress) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= _PLAIN_EVERY:
            last = now
            stream.write(f"sippet export: {state.records:,} records, "
                         f"{state.rate:,.0f} records/s, {state.pages:,} pages\n")
            stream.flush()

    return update
