"""The bulk engine: one outcome per input item, bounded look-ahead, journal and reconcile.

```
items ──next()──▶ N workers ──▶ out-queue ──▶ (reorder window) ──▶ caller     _scheduler
                    │ key, journal lookup: done before? ─▶ skipped
                    │ journal "started" ─▶ client.run ─▶ reconcile ─▶ journal final
                    └ retries ran out ─▶ set aside ─▶ one redrive pass at the end
```

This module is the public face, ``BulkJob`` and ``bulk()``; the parts, by responsibility:
``_scheduler`` runs the workers over the input (and knows nothing of Sippet), ``_state`` is
the job's one state enum, ``_policy`` is one item's lifecycle with no I/O (the write-safety
rule), ``_items`` does the I/O the policy asks for (``client.run``, ``reconcile``, the
journal, waiting out an outage) and ``_report`` makes the outcomes and counts them.
Workers call the client's public ``run``; the request engine below has already retried
whatever was safe, so what reaches the bulk engine is final except for two cases:

* ``OutcomeUnknownError`` — a write that may have executed (docs/protocol.md §12.5). With
  ``reconcile`` the worker looks the record up and re-sends only if it is absent; without
  it the item is reported ``unknown`` and never re-sent.
* ``RateLimitError`` / ``ServerError`` / ``TransportError`` — retries exhausted on a failure
  that provably did not execute. The item is set aside and re-driven once near the end;
  while the client's breaker says the server is unreachable, the redrive waits for it to
  answer again (at most ``redrive_wait`` seconds into the outage) before re-sending.

An error that no retry can fix (``is_fatal``: a rejected key, an unknown action, a wrong
URL) stops the job at once, as ``abort()`` does: what is in flight finishes, nothing more
is sent, and every other item is yielded ``not_sent`` with that error.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import (
    AsyncIterable,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, Self, TypeVar

from sippet_async._errors import SippetError, UsageError
from sippet_async._jobs._items import ItemDriver
from sippet_async._jobs._journal import Journal
from sippet_async._jobs._logs import job_logs
from sippet_async._jobs._policy import Rules
from sippet_async._jobs._report import BulkReport, Outcome
from sippet_async._protocol import is_read_action

if TYPE_CHECKING:
    from sippet_async._runner import Runner

__all__ = ["DEFAULT_REDRIVE_WAIT", "BulkJob", "Reconcile", "bulk"]

T = TypeVar("T")

# A job is iterated once: not started, running, or ended (closed, for good).
_Phase = Literal["new", "running", "ended"]

Reconcile = Callable[[T], Awaitable[Any]]

# ``ordered=True`` holds at most this many outcomes per unit of concurrency while waiting
# for a slow item: enough to keep every slot busy past a few retries of one item.
ORDER_WINDOW_FACTOR: Final = 8
# How far into an outage the redrive pass keeps waiting for the server to answer again: a
# restart, a deploy or a load-balancer failover is over within a minute; a server still
# unreachable after that is down for longer than a job should sit idle (run it again with
# its journal later). Counted from the breaker's opening, so the items of one outage share
# one wait however many batches of DEFERRED_CAP they fill.
DEFAULT_REDRIVE_WAIT: Final = 60.0


class BulkJob(Generic[T]):
    """A running bulk job: iterate it for one ``Outcome`` per input item.

    Use it with ``async with`` so that leaving early (``break``, an exception, a cancel)
    stops it at once and leaves nothing running; ``report`` gives counts and timing.
    ``stop()`` drains gracefully; ``interrupt()`` also cancels what is in flight;
    ``abort(cause)`` — and the first error no retry can fix — stops sending and reports
    every item not sent as ``not_sent``.

    Example:
        async with client.bulk("create_contact", rows, fields=["id"]) as outcomes:
            async for outcome in outcomes:
                print(outcome.index, outcome.status)
        print(outcomes.report.summary())
    """

    def __init__(
        self,
        client: Runner,
        action: str,
        items: Iterable[T] | AsyncIterable[T],
        *,
        fields: Sequence[str | Mapping[str, Any]] | None,
        request: Callable[[T], Mapping[str, Any]] | None,
        key: Callable[[T], str] | None,
        concurrency: int,
        ordered: bool,
        window: int,
        journal: str | os.PathLike[str] | Journal | None,
        reconcile: Reconcile[T] | None,
        idempotent: bool | None,
        report_unsent: bool,
        redrive: bool,
        redrive_wait: float = DEFAULT_REDRIVE_WAIT,
        previous: Callable[[T], str | None] | None = None,
    ) -> None:
        rules = Rules(
            reconcile=reconcile is not None,
            # An item left in doubt by an earlier run may simply be sent again when sending
            # twice is harmless (docs/protocol.md §12.5).
            resend_safe=idempotent is True or is_read_action(action),
            redrive=redrive,
            journal=journal is not None,
        )
        self._report = BulkReport(client.counters)
        self._driver = ItemDriver(
            client, action, items, fields=fields, request=request, key=key,
            reconcile=reconcile, idempotent=idempotent, journal=journal, report=self._report,
            rules=rules, report_unsent=report_unsent, redrive_wait=redrive_wait,
            concurrency=concurrency, ordered=ordered, window=window, previous=previous)
        self._scheduler = self._driver.scheduler
        self._phase: _Phase = "new"

    # -- the caller's side ------------------------------------------------------------

    @property
    def report(self) -> BulkReport:
        """Counts, retries and timing; live while running, final after."""
        return self._report

    @property
    def stopped_by(self) -> SippetError | None:
        """The error that stopped the job before it sent every item (see ``abort``)."""
        return self._driver.stopped_by

    @property
    def interrupted(self) -> tuple[Outcome[T], ...]:
        """Items in flight when the job was closed early (not yielded; also in the report)."""
        return tuple(self._scheduler.interrupted)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Outcome[T]:
        # The scheduler's outputs are passed on directly, not through an async generator
        # (one frame less per outcome: the register of speed shortcuts); whatever ends the
        # iteration (the end, an error, a cancel) closes the job before it propagates.
        if self._phase != "running":
            if self._phase == "ended":
                raise StopAsyncIteration
            self._phase = "running"
            try:
                self._report._start()
                self._driver.open(uuid.uuid4().hex)
                with job_logs():  # its worker tasks: the job logs how each item ends
                    self._scheduler.start()
            except BaseException:
                await self._end()
                raise
        try:
            output = self._scheduler.poll()  # ready: no coroutine
            return output if output is not None else await self._scheduler.__anext__()
        except BaseException:
            await self._end()
            raise

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop now: cancel what is in flight (see ``interrupted``), close the journal.

        Nothing is left running afterwards. Safe to call twice.
        """
        if self._phase == "new":  # never iterated: nothing to cancel, nothing opened
            self._phase = "ended"
            await self._scheduler.aclose()
            return
        await self._end()

    async def _end(self) -> None:
        """Close the scheduler, then the report and the journal; once."""
        if self._phase == "ended":
            return
        self._phase = "ended"
        try:
            await self._scheduler.aclose()
        finally:
            self._report._finish()
            await self._driver.aclose()

    def stop(self) -> None:
        """Stop taking input; items already taken finish and are still yielded."""
        self._scheduler.stop()

    def abort(self, cause: SippetError) -> None:
        """Send nothing more because of ``cause``; only the first call counts.

        Items in flight finish and are yielded as usual. Every other item is yielded
        ``not_sent`` with ``cause`` as its ``error`` and no journal line, so a later run
        sends it: the rest of the input too (it is read, not sent), unless the job was made
        with ``report_unsent=False``. The job calls this itself on the first error no retry
        can fix (``is_fatal``: a rejected key, an unknown action, a wrong URL).
        """
        if not isinstance(cause, SippetError):
            raise UsageError(f"abort() takes the SippetError that stops the job, got {cause!r}")
        self._driver.abort(cause)

    def interrupt(self) -> None:
        """``stop()``, and cancel what is in flight: each such item is yielded as
        ``unknown`` (it may have executed), then iteration ends."""
        self._scheduler.interrupt()


def bulk(
    client: Runner,
    action: str,
    items: Iterable[T] | AsyncIterable[T],
    *,
    fields: Sequence[str | Mapping[str, Any]] | None = None,
    request: Callable[[T], Mapping[str, Any]] | None = None,
    key: Callable[[T], str] | None = None,
    concurrency: int | None = None,
    ordered: bool = False,
    window: int | None = None,
    journal: str | os.PathLike[str] | Journal | None = None,
    reconcile: Reconcile[T] | None = None,
    idempotent: bool | None = None,
    report_unsent: bool = True,
    redrive: bool = True,
    redrive_wait: float = DEFAULT_REDRIVE_WAIT,
    previous: Callable[[T], str | None] | None = None,
) -> BulkJob[T]:
    """Validate the options and build the job (nothing runs until it is iterated).

    ``previous`` (for a job source, instead of a journal): an item's status from an earlier
    holder, as a journal would give it (``"started"``: it may have been sent). A call
    worker passes both: its own ``Journal`` (opened by key) and ``previous`` reading it.
    """
    if not isinstance(action, str) or not action:
        raise UsageError(f"action must be a non-empty string, got {action!r}")
    if isinstance(items, str | bytes | bytearray | Mapping) or not isinstance(
        items, Iterable | AsyncIterable
    ):
        raise UsageError(
            f"items must be a list, an iterable or an async iterable of items, got "
            f"{type(items).__name__}"
        )
    if concurrency is None:
        concurrency = client.config.max_concurrency
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise UsageError(f"concurrency must be an int >= 1, got {concurrency!r}")
    if window is None:
        window = ORDER_WINDOW_FACTOR * concurrency
    if isinstance(window, bool) or not isinstance(window, int) or window < concurrency:
        raise UsageError(f"window must be an int >= concurrency ({concurrency}), got {window!r}")
    for name, value in (("request", request), ("key", key), ("reconcile", reconcile)):
        if value is not None and not callable(value):
            raise UsageError(f"{name} must be callable, got {value!r}")
    if fields is not None and (isinstance(fields, str | bytes) or not isinstance(fields, Sequence)):
        raise UsageError(f"fields must be a list, e.g. ['id'], got {fields!r}")
    if isinstance(redrive_wait, bool) or not isinstance(redrive_wait, int | float) \
            or math.isnan(redrive_wait) or redrive_wait < 0:
        raise UsageError(f"redrive_wait must be a number of seconds >= 0 (inf: as long as "
                         f"it takes), got {redrive_wait!r}")
    return BulkJob(
        client, action, items, fields=fields, request=request, key=key,
        concurrency=concurrency, ordered=ordered, window=window, journal=journal,
        report_unsent=report_unsent,
        reconcile=reconcile, idempotent=idempotent, redrive=redrive,
        redrive_wait=float(redrive_wait), previous=previous,
    )
