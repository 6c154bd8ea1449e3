"""What an import does with rejected rows: the rejects file and ``--max-rejects``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final

import msgspec

from sippet_async._cli._rows import Row
from sippet_async._errors import RpcError, SippetError, UsageError
from sippet_async._jobs._report import Outcome

__all__ = ["RejectLimit", "Rejects", "TooManyRejectsError", "parse_max_rejects"]

_ENCODER: Final = msgspec.json.Encoder()


class TooManyRejectsError(SippetError):
    """``--max-rejects``: more rows were rejected than allowed, so the import stopped."""

    def __init__(self, message: str, *, rejected: int, limit: int) -> None:
        super().__init__(message)
        self.rejected = rejected
        self.limit = limit


@dataclass(frozen=True, slots=True)
class RejectLimit:
    """``--max-rejects``: ``count`` rejected rows, or ``percent`` of the file's rows."""

    count: int | None = None
    percent: float | None = None

    def allowed(self, rows: int) -> int:
        """How many rejected rows a file of ``rows`` data rows may have."""
        if self.count is not None:
            return self.count
        assert self.percent is not None
        return int(rows * self.percent / 100)

    def __str__(self) -> str:
        return str(self.count) if self.count is not None else f"{self.percent:g}%"


def parse_max_rejects(value: str | int | None) -> RejectLimit | None:
    """``"50"`` or ``50`` -> at most 50 rejected rows; ``"5%"`` -> 5% of the file's rows.

    Raises:
        UsageError: not a whole number >= 0 or a percentage from 0% to 100%.
    """
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise UsageError(f"--max-rejects must be >= 0, got {value}")
        return RejectLimit(count=value)
    text = str(value).strip()
    try:
        if text.endswith("%"):
            percent = float(text[:-1])
            if not 0 <= percent <= 100:  # also refuses nan
                raise ValueError(text)
            return RejectLimit(percent=percent)
        count = int(text)
        if count < 0:
            raise ValueError(text)
    except ValueError:
        raise UsageError(
            f"--max-rejects must be a number of rows (e.g. 50) or a percentage of the "
            f"file's rows (e.g. 5%), got {value!r}"
        ) from None
    return RejectLimit(count=count)


class Rejects:
    """The rejects file: one JSON line per row that failed or whose outcome is unknown.

    It is rewritten by every run (it lists what is still not done), created on first use.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.count = 0
        self._stream: IO[bytes] | None = None
        if path is not None and path.exists():
            path.unlink()  # an earlier run's list; this run will say what is still not done

    def add(self, outcome: Outcome[Row]) -> None:
        self.count += 1
        if self.path is None:
            return
        if self._stream is None:
            self._stream = self.path.open("wb")
        row = outcome.item
        error = outcome.error
        entry: dict[str, Any] = {
            "row": row.number, "line": row.line, "status": outcome.status,
            "error": f"{type(error).__name__}: {error}" if error is not None else None,
        }
        if isinstance(error, RpcError):
            entry["errors"] = [msgspec.to_builtins(item) for item in error.errors]
        entry["values"] = row.values
        self._stream.write(_ENCODER.encode(entry) + b"\n")

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def __enter__(self) -> Rejects:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
