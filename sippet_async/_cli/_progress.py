"""The live progress line of ``sippet import``: rich when installed and on a terminal."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, Final

from sippet_async._jobs._report import BulkReport

__all__ = ["ImportProgress"]

# Redraw the live display at most this often; rich repaints on its own clock anyway.
_PROGRESS_EVERY: Final = 0.1


class ImportProgress:
    """A live line on stderr (rich), only when asked: done/total, rate, ETA, statuses."""

    def __init__(self, enabled: bool, total: int | None, report: BulkReport) -> None:
        self._report = report
        self._live: Any = None
        self._task: Any = None
        self._last = 0.0
        if not enabled:
            return
        try:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )
        except ImportError:  # rich is the optional "progress" extra
            return
        self._live = Progress(
            TextColumn("[bold]import"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}/s"), TimeRemainingColumn(),
            TextColumn("{task.fields[detail]}"),
            console=Console(stderr=True), transient=False,
        )
        self._task = self._live.add_task("import", total=total, rate="0", detail="")

    def __enter__(self) -> ImportProgress:
        if self._live is not None:
            self._live.start()
        return self

    def tick(self, force: bool = False) -> None:
        if self._live is None:
            return
        now = time.monotonic()
        if not force and now - self._last < _PROGRESS_EVERY:
            return
        self._last = now
        r = self._report
        retries = sum(r.retries.values())
        detail = (f"ok {r.succeeded + r.skipped}  failed {r.failed}  unknown {r.unknown}  "
                  f"not sent {r.not_sent}  retries {retries}")
        self._live.update(self._task, completed=r.total, rate=f"{r.throughput:.0f}",
                          detail=detail)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._live is not None:
            self.tick(force=True)
            self._live.stop()
