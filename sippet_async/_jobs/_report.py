"""What a bulk job hands back: one ``Outcome`` per input item and the job's ``BulkReport``.

``BulkReport._settle`` is the one place an outcome is counted, so the report's counts always
match what was yielded (plus the ``interrupted`` items, which the caller never saw).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import msgspec

from sippet_async._errors import SippetError, UsageError

if TYPE_CHECKING:
    from sippet_async._hooks import Counters

__all__ = ["BulkReport", "Outcome", "Status", "default_key", "record_id"]

T = TypeVar("T")

Status = Literal["succeeded", "failed", "unknown", "skipped", "not_sent"]


class Outcome(msgspec.Struct, Generic[T], frozen=True, repr_omit_defaults=True):
    """What happened to one input item.

    ``status`` is ``succeeded``, ``failed`` (a definite error, the write did not happen),
    ``unknown`` (it may have happened; never re-sent without ``reconcile``), ``skipped``
    (a journal says an earlier run succeeded) or ``not_sent`` (the job stopped before
    sending it; ``error`` is the cause, ``job.stopped_by``). ``attempts`` counts sends by
    the bulk engine in this run (the request engine's own retries are inside one attempt).
    """

    index: int
    item: T
    status: Status
    data: Any = None
    error: SippetError | None = None
    attempts: int = 0
    record_id: str | None = None
    reconciled: bool = False
    _key: str | None = None  # set when a journal or key= made one

    @property
    def ok(self) -> bool:
        """True when the item is done: ``succeeded`` or ``skipped``."""
        return self.status in ("succeeded", "skipped")

    @property
    def key(self) -> str:
        """The item's stable key: ``key=(item)`` if given, else a hash of the item."""
        # Computed on demand when no journal needed it: most callers never look.
        return self._key if self._key is not None else default_key(self.item)


class BulkReport:
    """Counts and timing of a bulk job; live while it runs, final once iteration ends.

    ``interrupted`` counts items in flight when the job was interrupted or closed early;
    they are also counted as ``unknown`` (a journal keeps them in doubt for the next run).
    ``not_sent`` counts items the job stopped before sending; ``stopped_by`` is the cause.
    ``retries`` maps a cause to how many extra sends it caused: the request engine's own
    retries while the job ran (``"429"``, ``"500"``, ``"transport"``, ...) plus the job's
    (``"resend_after_reconcile"``, ``"redrive_<cause>"``).
    """

    __slots__ = ("_baseline", "_counters", "_own", "failed", "finished_at", "interrupted",
                 "not_sent", "reconciled", "skipped", "started_at", "stopped_by", "succeeded",
                 "unknown")

    def __init__(self, counters: Counters | None = None) -> None:
        self.succeeded = 0
        self.failed = 0
        self.unknown = 0
        self.skipped = 0
        self.not_sent = 0
        self.stopped_by: SippetError | None = None
        self.interrupted = 0
        self.reconciled = 0
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self._own: dict[str, int] = {}
        self._counters = counters
        self._baseline: dict[str, int] = dict(counters.retries) if counters else {}

    def __repr__(self) -> str:
        return f"<BulkReport {self.summary()}>"

    @property
    def total(self) -> int:
        """Items accounted for: succeeded + failed + unknown + skipped + not_sent."""
        return self.succeeded + self.failed + self.unknown + self.skipped + self.not_sent

    @property
    def retries(self) -> dict[str, int]:
        """Extra sends by cause (a fresh dict)."""
        merged = dict(self._own)
        if self._counters is not None:
            for cause, count in self._counters.retries.items():
                extra = count - self._baseline.get(cause, 0)
                if extra:
                    merged[cause] = merged.get(cause, 0) + extra
        return merged

    @property
    def wall_time(self) -> float:
        """Seconds from the first item to the end (or to now while running)."""
        if self.started_at is None:
            return 0.0
        end = self.finished_at if self.finished_at is not None else time.perf_counter()
        return end - self.started_at

    @property
    def throughput(self) -> float:
        """Items sent and settled per second (``skipped`` and ``not_sent`` ones cost
        nothing, so they are excluded)."""
        wall = self.wall_time
        done = self.succeeded + self.failed + self.unknown
        return done / wall if wall > 0 else 0.0

    def _count_retry(self, cause: str) -> None:
        """Record one extra send by the bulk engine itself."""
        self._own[cause] = self._own.get(cause, 0) + 1

    def _settle(
        self, index: int, item: T, status: Status, data: Any = None,
        error: SippetError | None = None, attempts: int = 0, record: str | None = None,
        reconciled: bool = False, interrupted: bool = False, key: str | None = None,
    ) -> Outcome[T]:
        """Count one item's final status and make its outcome."""
        if status == "succeeded":
            self.succeeded += 1
        elif status == "failed":
            self.failed += 1
        elif status == "unknown":
            self.unknown += 1
        elif status == "not_sent":
            self.not_sent += 1
        else:
            self.skipped += 1
        if reconciled:
            self.reconciled += 1
        if interrupted:
            self.interrupted += 1
        return Outcome(index, item, status, data, error, attempts, record, reconciled, key)

    def _start(self) -> None:
        self.started_at = time.perf_counter()
        if self._counters is not None:
            self._baseline = dict(self._counters.retries)

    def _finish(self) -> None:
        if self._counters is not None:  # freeze: later requests of the client are not ours
            self._own = self.retries
            self._counters = None
        self.finished_at = time.perf_counter()

    def summary(self) -> str:
        """One line for logs and the CLI."""
        retries = ", ".join(f"{k}={v}" for k, v in sorted(self.retries.items())) or "none"
        stopped = self.stopped_by
        cause = f"; stopped by {type(stopped).__name__}: {stopped}" if stopped is not None else ""
        return (
            f"{self.total} items: {self.succeeded} succeeded, {self.failed} failed, "
            f"{self.unknown} unknown, {self.skipped} skipped, {self.not_sent} not sent "
            f"({self.reconciled} reconciled, {self.interrupted} interrupted); "
            f"retries: {retries}; {self.wall_time:.2f}s, {self.throughput:.0f}/s{cause}"
        )


def default_key(item: object) -> str:
    """A stable key for an item: a hash of its JSON form with sorted keys.

    Raises:
        UsageError: the item is not JSON-encodable (pass ``key=`` to bulk).
    """
    try:
        encoded = msgspec.json.encode(item, order="sorted")
    except (TypeError, msgspec.EncodeError) as exc:
        raise UsageError(f"cannot derive a key from item {item!r}; pass key=: {exc}") from exc
    return hashlib.blake2b(encoded, digest_size=16).hexdigest()


def record_id(data: Any) -> str | None:
    """The ``id`` of a created record, when the reply's data is a mapping that has one."""
    if type(data) is dict or isinstance(data, Mapping):
        value = data.get("id")
        return value if isinstance(value, str) else None
    return None
