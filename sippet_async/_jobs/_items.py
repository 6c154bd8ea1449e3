"""The bulk job's I/O for each item: do what the policy says, report back what happened.

The scheduler (``_scheduler``) hands each item to ``ItemDriver``; for each step the pure
policy (``_policy.step``) says what comes next, and the driver does it: write the journal's
``started`` line, ``client.run``, call ``reconcile``, wait for an unreachable server, or
settle the outcome (journal line, report count). Sorting a failure into the policy's events
(``OutcomeUnknownError``: it may have executed; 429/5xx/connection with retries exhausted:
it did not; anything else: definite) happens here, once.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

import msgspec

from sippet_async._errors import (
    ClientClosedError,
    OutcomeUnknownError,
    RateLimitError,
    ServerError,
    ServerUnreachableError,
    SippetError,
    TransportError,
    UsageError,
    is_fatal,
)
from sippet_async._jobs._journal import Journal, key_digest
from sippet_async._jobs._policy import (
    NEW_ITEM,
    Action,
    Event,
    ItemState,
    Rules,
    Why,
    admit,
    stepper,
)
from sippet_async._jobs._report import BulkReport, Outcome, default_key, record_id
from sippet_async._jobs._scheduler import Finished, Scheduler
from sippet_async._jobs._state import JobState
from sippet_async._protocol import is_read_action

if TYPE_CHECKING:
    from sippet_async._runner import Runner

__all__ = ["ItemDriver"]

T = TypeVar("T")

_RETRYABLE: Final = (RateLimitError, ServerError, TransportError)

log: Final = logging.getLogger("sippet_async")


class _Work(msgspec.Struct, Generic[T]):
    """One item in the driver's hands (a Struct: built in C, once per item; the register)."""

    index: int
    item: T
    key: str | None = None  # computed when a journal or key= needs it
    previous: str | None = None  # its status in the journal of an earlier run
    state: ItemState = NEW_ITEM
    error: SippetError | None = None  # the last error it met


class ItemDriver(Generic[T]):
    """Runs a bulk job's items: owns the scheduler, the journal and the job's stop cause."""

    def __init__(
        self, client: Runner, action: str, items: Iterable[T] | AsyncIterable[T], *,
        fields: Sequence[str | Mapping[str, Any]] | None,
        request: Callable[[T], Mapping[str, Any]] | None,
        key: Callable[[T], str] | None,
        reconcile: Callable[[T], Any] | None,
        idempotent: bool | None,
        journal: str | os.PathLike[str] | Journal | None,
        report: BulkReport,
        rules: Rules,
        report_unsent: bool,
        redrive_wait: float,
        concurrency: int, ordered: bool, window: int,
        previous: Callable[[T], str | None] | None = None,
    ) -> None:
        self._client = client
        self._previous = previous
        self._action = action
        self._fields = list(fields) if fields is not None else None
        self._request = request
        self._key = key
        self._reconcile = reconcile
        self._idempotent = idempotent
        self._journal_path = journal
        self._journal: Journal | None = None
        self._report = report
        self._step = stepper(rules)
        self._report_unsent = report_unsent
        self._redrive_wait = redrive_wait
        self._template: dict[str, Any] = {}
        self._key_prefix: str | None = None
        self._plain = False  # no journal, key= or previous: admit() has nothing to look up
        self.stopped_by: SippetError | None = None  # abort(): why nothing more is sent
        self.scheduler: Scheduler[T, _Work[T], Outcome[T]] = Scheduler(
            items, self, concurrency=concurrency, ordered=ordered, window=window,
            name="sippet-bulk")

    def open(self, job_id: str) -> None:
        """Open the journal (its job id wins over ``job_id``) and build the shared keys."""
        if isinstance(self._journal_path, Journal):  # a call worker's, opened (by key) there
            self._journal = self._journal_path
            job_id = self._journal.job
        elif self._journal_path is not None:
            self._journal = Journal.open(self._journal_path, action=self._action)
            job_id = self._journal.job
        self._template = self._request_template(job_id)
        self._plain = self._journal is None and self._key is None and self._previous is None

    async def aclose(self) -> None:
        """Close the journal, flushed (at once, if cancelled again while closing)."""
        if self._journal is not None:
            try:
                await self._journal.aclose()
            except BaseException:
                self._journal.close()
                raise

    def abort(self, cause: SippetError) -> None:
        """Send nothing more because of ``cause`` (see ``BulkJob.abort``)."""
        ended = self.scheduler.state in (JobState.CLOSING, JobState.CLOSED)
        if self.stopped_by is not None or ended:  # a job that has ended stays as is
            return
        self.stopped_by = self._report.stopped_by = cause
        log.error("%s: bulk job stopped by %s: %s; what is in flight finishes, nothing more "
                  "is sent", self._action, type(cause).__name__, cause)
        self.scheduler.abort()  # no redrive; workers read on to report each item unsent
        if not self._report_unsent:
            self.scheduler.stop()

    # -- one item: what the scheduler calls (its Handler) ------------------------------

    def admit(self, index: int, item: T) -> _Work[T] | Finished[Outcome[T]]:
        """Key a pulled item and look it up in the journal: skipped if done before."""
        if self._plain:
            return _Work(index, item)
        journal = self._journal
        if self._previous is not None:  # a job source says what an earlier holder did
            return self._admit_previous(index, item, self._previous(item))
        if self._key is None and journal is None:
            return _Work(index, item, None, None, NEW_ITEM)
        key = self._key(item) if self._key is not None else default_key(item)
        if not isinstance(key, str) or not key:
            raise UsageError(f"key= must return a non-empty str, got {key!r} for item {index}")
        previous = journal.previous(index) if journal is not None else None
        if previous is None:
            return _Work(index, item, key, None, NEW_ITEM)
        if previous.digest != key_digest(key):
            raise UsageError(
                f"journal {self._journal_path}: item {index} has key {key!r}, which != "
                "the item an earlier run recorded there; the input changed. Use the same "
                "input, or another journal path to start over"
            )
        state = admit(previous.status)
        if state is None:
            return Finished(self._report._settle(index, item, "skipped", key=key,
                                                record=previous.record_id))
        return _Work(index, item, key, previous.status, state)

    def _admit_previous(
        self, index: int, item: T, previous: str | None
    ) -> _Work[T] | Finished[Outcome[T]]:
        key = self._key(item) if self._key is not None else None
        state = admit(previous)
        if state is None:
            return Finished(self._report._settle(index, item, "skipped", key=key))
        return _Work(index, item, key, previous, state)

    async def process(self, work: _Work[T]) -> Outcome[T] | None:
        """Drive one item through the policy: its outcome, or None when set aside."""
        steps, scheduler = self._step, self.scheduler
        begun, action = steps(work.state, "begin", scheduler.state)
        keys: dict[str, Any] = {}
        if action.act != "settle":
            try:
                keys = self._keys(work)
            except Exception as exc:  # the caller's request= failed on this item: reject it
                work.error = UsageError(f"cannot build the request for item {work.index}: {exc}")
                work.error.__cause__ = exc
                begun, action = steps(work.state, "bad_request", scheduler.state)
        work.state = begun
        data: Any = None
        event: Event
        while True:
            act = action.act
            if act == "settle":
                return self._settle(work, action, data)
            if act == "defer":
                error = work.error
                cause = error.__cause__ if isinstance(error, OutcomeUnknownError) else error
                self._report._count_retry(f"redrive_{_cause(cause)}")
                return None
            if act == "send":  # written out here, not a coroutine of its own: once per item
                if action.mark or action.cause is not None:
                    self._before_send(work, action)
                try:
                    data = await self._client.run(self._action, **keys)
                    event = "sent"
                except SippetError as exc:
                    event = self._send_failed(work, exc)
            elif act == "lookup":
                event, data = await self._lookup(work)
            else:
                reachable = await self._client.wait_reachable(self._redrive_wait)
                event = "reachable" if reachable else "unreachable"
            work.state, action = steps(work.state, event, scheduler.state)

    def release(self, work: _Work[T]) -> Outcome[T]:
        """An item set aside that gets no redrive (the job stopped): as it stands."""
        work.state, action = self._step(work.state, "released", self.scheduler.state)
        return self._settle(work, action, None)

    def cut_off(self, work: _Work[T]) -> Outcome[T] | None:
        """An item cancelled mid-flight: unknown; its journal line stays "started"."""
        if work.state.stage == "settled":
            return None
        work.state, action = self._step(work.state, "cut_off", self.scheduler.state)
        return self._settle(work, action, None)

    def _before_send(self, work: _Work[T], action: Action) -> None:
        """Record "started" (when the policy says so) and count a resend's cause."""
        if action.mark:
            assert self._journal is not None
            assert work.key is not None
            self._journal.started(work.index, work.key)  # on record before it can leave
        if action.cause is not None:
            self._report._count_retry(action.cause)

    def _send_failed(self, work: _Work[T], exc: SippetError) -> Event:
        """What a failed ``client.run`` means for the item; an error no retry can fix stops
        the job before the item is reported."""
        if is_fatal(exc):
            self.abort(exc)
        if isinstance(exc, ClientClosedError):
            raise exc
        work.error = exc
        if isinstance(exc, OutcomeUnknownError):
            return "send_unknown"
        if isinstance(exc, TransportError) and self._client.counters.breaker in (
            "open", "probing"
        ):
            return "send_outage"
        if isinstance(exc, _RETRYABLE):  # retries exhausted; it did not execute
            return "send_retryable"
        return "send_failed"

    async def _lookup(self, work: _Work[T]) -> tuple[Event, Any]:
        """Run ``reconcile``: found (with the record), absent, or why it failed."""
        assert self._reconcile is not None
        try:
            found = self._reconcile(work.item)
            if inspect.isawaitable(found):
                found = await found
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_fatal(exc):  # the lookup's own request says no request can succeed
                self.abort(exc)
            work.error = OutcomeUnknownError(
                f"{self._action}: item {work.index}: reconcile failed, outcome unknown: {exc}",
                action=self._action,
            )
            work.error.__cause__ = exc
            # If it failed only for now (429, 5xx, connection), the redrive pass looks again.
            return ("lookup_busy" if isinstance(exc, _RETRYABLE) else "lookup_failed",
                    None)
        return ("absent", None) if found is None else ("found", found)

    def _settle(self, work: _Work[T], action: Action, data: Any) -> Outcome[T]:
        """Journal and count what the policy settled, and make the outcome."""
        status, why = action.status, action.why
        assert status is not None
        assert why is not None
        error = None if why == "sent" else self._error(work, why, status)
        record = record_id(data) if status == "succeeded" else None
        journal = self._journal
        if journal is not None and work.key is not None and status != "not_sent" \
                and why != "interrupted":
            journal.finished(work.index, work.key, status, record_id=record, error=error)
        if status == "unknown":  # the one line per item the user must act on (see _logs)
            log.warning("%s: item %d ended unknown, not sent again: %s", self._action,
                        work.index, error)
        # Positional: keyword arguments cost a Python call more to parse, once per item.
        return self._report._settle(
            work.index, work.item, status, data, error, work.state.attempts, record,
            why == "found", why == "interrupted", work.key)

    def _error(self, work: _Work[T], why: Why, status: str) -> SippetError | None:
        """The error an outcome carries, by why the policy settled it."""
        if why == "error":
            return work.error
        if why == "stopped":
            return self.stopped_by
        if why == "earlier_run":
            return OutcomeUnknownError(
                f"{self._action}: item {work.index} may have executed in an earlier run "
                f"(the journal says {work.previous or 'unknown'!r}); pass reconcile= to "
                "resolve it", action=self._action)
        if why == "interrupted":
            return OutcomeUnknownError(
                f"{self._action}: item {work.index} was in flight when the job was stopped; "
                "it may have executed", action=self._action)
        if why == "unreachable":  # the redrive waited redrive_wait seconds for nothing
            error = ServerUnreachableError(
                f"{self._action}: item {work.index}: the server stayed unreachable for "
                f"{self._redrive_wait:g}s (redrive_wait); "
                + ("it may have executed before" if status == "unknown" else "not sent"))
            error.__cause__ = work.error
            return error
        return None  # sent, found: the data tells

    def _request_template(self, job_id: str) -> dict[str, Any]:
        """The keyword arguments every item shares."""
        template: dict[str, Any] = {}
        if self._fields is not None:
            template["fields"] = self._fields
        if self._idempotent is not None:
            template["idempotent"] = self._idempotent
        self._key_prefix = None
        if not is_read_action(self._action):
            # Stable across resumes of one journal, distinct between jobs (§12.4).
            self._key_prefix = job_id[:16] + "-"
        return template

    def _keys(self, work: _Work[T]) -> dict[str, Any]:
        if self._request is None:
            keys = {"input": work.item, **self._template}
        else:
            keys = {**self._template, **self._request(work.item)}
        if self._key_prefix is not None and "idempotency_key" not in keys:
            keys["idempotency_key"] = self._key_prefix + str(work.index)
        return keys



def _cause(exc: BaseException | None) -> str:
    if isinstance(exc, RateLimitError):
        return "rate_limited"
    if isinstance(exc, ServerError):
        return f"http_{exc.status}"
    return "transport"
