"""The call worker: a long-running consumer that places calls at most once each.

It takes call requests from an ``asyncio.Queue``, any async iterable, or a shared durable
queue (a ``JobSource`` such as ``sippet_async.redis.RedisCallQueue``: claimed jobs, each
outcome recorded and acknowledged in one step, a dead worker's jobs taken over and looked
up before any re-send). It runs each through
the bulk engine (``client.bulk``), so it shares the client's rate limit, concurrency cap
and write-safety rules (docs/protocol.md §12.5): a call whose outcome is unknown is reported
``unknown`` and never placed again unless ``reconcile`` says it was not placed. Every
request taken gets exactly one outcome, handed to ``on_outcome``.

With ``journal=`` a worker survives a restart as a bulk job does: each request's key (``key=``,
default a hash of the request) is recorded ``started`` before the call leaves and with its
outcome after, so a worker restarted on the same requests skips those done, looks up (or
reports ``unknown``) those that may have been placed, and places a number at most once per
journal, ``kill -9`` included (``_journal``: a worker's journal is looked up by key).

Shutdown (``stop()``; SIGTERM or Ctrl-C by default, a second one cancels at once): stop
taking requests, let those in flight finish for up to ``grace`` seconds, then cancel the
rest; each of those is reported ``unknown``.
An error no retry can fix (a rejected key: ``is_fatal``) stops the worker the same way at
once, without the grace timer, and ``run`` raises it; requests not taken stay in the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import signal
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from msgspec.structs import replace

from sippet_async._errors import UsageError
from sippet_async._jobs._bulk import BulkJob, Reconcile, bulk
from sippet_async._jobs._journal import Journal, key_digest
from sippet_async._jobs._report import BulkReport, Outcome, default_key
from sippet_async._jobs._source import Job, JobSource, TakenOverError
from sippet_async._protocol import is_read_action

if TYPE_CHECKING:
    from sippet_async._runner import Runner

__all__ = ["CallWorker"]

T = TypeVar("T")

# Long enough for a slow call creation and a couple of retries, short enough to finish well
# inside the 30 s most process managers wait between SIGTERM and SIGKILL.
DEFAULT_GRACE: Final = 20.0
# SIGTERM: how process managers stop a service; SIGINT: Ctrl-C in a terminal.
STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)

log: Final = logging.getLogger("sippet_async")

OnOutcome = Callable[[Outcome[T]], Awaitable[None] | None]


class CallWorker(Generic[T]):
    """Places calls from a queue, at most once each, and reports every outcome.

    Example:
        async def report(outcome: Outcome[dict]) -> None:
            print(outcome.item["toE164"], outcome.status, outcome.error)

        worker = CallWorker(client, report, concurrency=16, journal="calls.journal")
        await worker.run(queue)  # until stop(), SIGTERM, Ctrl-C or the end of the source
    """

    def __init__(
        self,
        client: Runner,
        on_outcome: OnOutcome[T],
        *,
        action: str = "create_call",
        fields: Sequence[str | Mapping[str, Any]] | None = ("id",),
        request: Callable[[T], Mapping[str, Any]] | None = None,
        key: Callable[[T], str] | None = None,
        concurrency: int | None = None,
        reconcile: Reconcile[T] | None = None,
        grace: float = DEFAULT_GRACE,
        journal: str | os.PathLike[str] | None = None,
    ) -> None:
        """Configure the worker; nothing runs until ``run``.

        Args:
            on_outcome: called (sync or async) once per request taken, in completion order.
                If it raises, the worker stops and the error propagates from ``run``.
            action: the write to run per request; each item is sent as its ``input``
                unless ``request`` builds the keys.
            key: a stable id per request (default: a fresh uuid; with ``journal``, a hash of
                the request). It makes the idempotency key, so a server that honours
                ``Idempotency-Key`` never places it twice.
            concurrency: requests in flight; default the client's ``max_concurrency``.
            reconcile: ``async (request) -> call | None``: for an unknown outcome, whether
                the call exists; only if not is it placed again. Without it an unknown
                outcome is reported as such (never re-sent).
            grace: seconds in-flight requests get to finish after ``stop()``.
            journal: a file recording each request's key before its call is placed and its
                outcome after: a worker restarted with it skips what succeeded and never
                places a key twice (one in doubt is looked up with ``reconcile``, else
                reported ``unknown``). Give a request that must be placed again a new key.
                Not with a ``JobSource``, which keeps its own records.
        """
        if not callable(on_outcome):
            raise UsageError(f"on_outcome must be callable, got {on_outcome!r}")
        if isinstance(grace, bool) or not isinstance(grace, int | float) or not grace >= 0:
            raise UsageError(f"grace must be seconds >= 0, got {grace!r}")
        self._client = client
        self._on_outcome = on_outcome
        self._action = action
        self._fields = fields
        self._request = request
        self._key = key
        self._concurrency = concurrency
        self._reconcile = reconcile
        self._grace = float(grace)
        self._journal = journal
        self._signalled: signal.Signals | None = None
        self._job: BulkJob[Any] | None = None
        self._stop_requested = False
        self._interrupted = False
        self._timer: asyncio.TimerHandle | None = None

    @property
    def report(self) -> BulkReport | None:
        """The running (or last) job's report; None before ``run``."""
        return self._job.report if self._job is not None else None

    @property
    def signalled(self) -> signal.Signals | None:
        """The signal that stopped the worker, or None (a program then exits with
        ``128 + signalled``: 130 after Ctrl-C)."""
        return self._signalled

    def stop(self) -> None:
        """Stop taking requests; in-flight ones get ``grace`` seconds, then are cancelled
        and reported ``unknown``. Safe to call from a signal handler, and twice."""
        self._stop_requested = True
        job = self._job
        if job is None:
            return
        job.stop()
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._grace, self._interrupt)

    def _on_signal(self, signum: signal.Signals) -> None:
        if self._signalled is not None:  # the second one: do not wait for the grace period
            log.info("%s again: cancelling the calls in flight", signum.name)
            self._interrupt()
            return
        self._signalled = signum
        log.info("%s: taking no more requests; those in flight get %gs to finish (%s again "
                 "stops at once)", signum.name, self._grace, signum.name)
        self.stop()

    def _interrupt(self) -> None:
        self._interrupted = True
        if self._job is not None:
            self._job.interrupt()

    async def run(
        self,
        source: asyncio.Queue[T] | AsyncIterable[T] | JobSource[T],
        *,
        stop_signals: Sequence[signal.Signals] = STOP_SIGNALS,
    ) -> BulkReport:
        """Take requests from ``source`` until it ends, ``stop()`` or a stop signal
        (SIGTERM, Ctrl-C: see ``signalled``).

        With a queue, ``task_done()`` is called once each request's outcome was reported.
        With a ``JobSource`` (``RedisCallQueue``), each outcome is recorded there (and the
        job acknowledged, in one step) before it is reported; a job cut off by the grace
        timer, or never sent, stays pending for another worker. Returns the final report.

        Raises:
            SippetError: the error no retry can fix that stopped the worker (e.g.
                ``AuthenticationError``), once every request taken has been reported;
                requests not taken are left in the queue for a worker with the fix.
        """
        if self._job is not None:
            raise UsageError("this CallWorker is already running (or has run); make another")
        if isinstance(source, JobSource):
            if self._journal is not None:
                raise UsageError("journal= is for a queue or an async iterable: a JobSource "
                                 "keeps each job's outcome itself")
            async with source.session(request_timeout=self._client.config.timeouts.total):
                return await self._run_source(source, stop_signals)
        if isinstance(source, asyncio.Queue):
            items: AsyncIterable[T] = _from_queue(source)
            queue: asyncio.Queue[T] | None = source
        elif isinstance(source, AsyncIterable):
            items, queue = source, None
        else:
            raise UsageError(
                f"source must be an asyncio.Queue or an async iterable, got {source!r}"
            )
        async def deliver(outcome: Outcome[T]) -> None:
            try:
                await self._deliver(outcome)
            finally:
                if queue is not None:
                    queue.task_done()

        if self._journal is None:
            job: BulkJob[T] = bulk(
                self._client,
                self._action, items, fields=self._fields, request=self._request,
                key=self._key or _fresh_key, concurrency=self._concurrency,
                reconcile=self._reconcile, redrive=False,
                report_unsent=False,  # a queue has no end: what is not taken stays there
            )
            return await self._drive(job, deliver, stop_signals)
        journal = Journal.open(self._journal, action=self._action, by="key")
        try:
            return await self._drive(self._journalled(items, journal), deliver, stop_signals)
        finally:
            await journal.aclose()  # the job closes it too; closing twice is harmless

    def _journalled(self, items: AsyncIterable[T], journal: Journal) -> BulkJob[T]:
        """The bulk job over ``items`` with the worker's journal, looked up by key: the
        journal's word on a key goes to the bulk policy as an earlier run's would."""
        key = _checked(self._key or default_key)
        build = self._request
        # The same idempotency key for a request whichever run of this journal sends it.
        prefix = None if is_read_action(self._action) else f"sippet-{journal.job[:16]}-"

        def request(item: T) -> Mapping[str, Any]:
            keys: dict[str, Any] = {"input": item} if build is None else dict(build(item))
            if prefix is not None:
                keys.setdefault("idempotency_key", prefix + key_digest(key(item)).hex())
            return keys

        def previous(item: T) -> str | None:
            earlier = journal.previous_key(key(item))
            return None if earlier is None else earlier.status

        return bulk(
            self._client, self._action, items, fields=self._fields, request=request, key=key,
            concurrency=self._concurrency, reconcile=self._reconcile, redrive=False,
            report_unsent=False, journal=journal, previous=previous,
        )

    async def _run_source(
        self, source: JobSource[T], stop_signals: Sequence[signal.Signals]
    ) -> BulkReport:
        """Run the jobs a source claims; each job's id is its item key, and an earlier
        holder's claim puts it in doubt, as a journal's "started" line would."""
        build, reconcile = self._request, self._reconcile

        def request(job: Job[T]) -> Mapping[str, Any]:
            keys: dict[str, Any] = {"input": job.item} if build is None \
                else dict(build(job.item))
            # The same key whichever worker sends it (a server honouring it, §12.4).
            keys.setdefault("idempotency_key", f"sippet-job-{job.id}")
            return keys

        async def lookup(job: Job[T]) -> Any:
            assert reconcile is not None
            # A lookup is the only way to a re-send: first make sure no heir has the job.
            if not await source.owns(job):
                raise TakenOverError(f"job {job.id} was taken over by another worker")
            found = reconcile(job.item)
            return await found if inspect.isawaitable(found) else found

        job: BulkJob[Job[T]] = bulk(
            self._client, self._action, source.jobs(), fields=self._fields, request=request,
            key=_job_id, concurrency=self._concurrency,
            reconcile=lookup if reconcile is not None else None, redrive=False,
            report_unsent=False, previous=_earlier,
        )

        async def deliver(outcome: Outcome[Job[T]]) -> None:
            taken = outcome.item
            own: Outcome[T] = replace(outcome, item=taken.item, index=taken.index)  # type: ignore[arg-type]
            # A call cut off by the grace timer may have been placed: it stays claimed and
            # pending, and whoever takes it over looks it up first. not_sent: never sent.
            final = own.status in ("succeeded", "failed", "skipped") or (
                own.status == "unknown" and not self._interrupted)
            await source.settle(taken, own, final=final)
            await self._deliver(own)

        return await self._drive(job, deliver, stop_signals)

    async def _drive(
        self, job: BulkJob[Any], deliver: Callable[[Outcome[Any]], Awaitable[None]],
        stop_signals: Sequence[signal.Signals],
    ) -> BulkReport:
        self._job = job
        loop = asyncio.get_running_loop()
        installed = _install(loop, stop_signals, self._on_signal)
        try:
            if self._stop_requested:
                self._stop_requested = False
                self.stop()
            async with job:
                async for outcome in job:
                    await deliver(outcome)
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)
            if self._timer is not None:
                self._timer.cancel()
        if job.stopped_by is not None:
            raise job.stopped_by
        return job.report

    async def _deliver(self, outcome: Outcome[T]) -> None:
        result = self._on_outcome(outcome)
        if inspect.isawaitable(result):
            await result


async def _from_queue(queue: asyncio.Queue[T]) -> AsyncIterator[T]:
    # Cancelling ``get()`` leaves the item in the queue, so stop() loses nothing.
    shut_down: type[BaseException] | None = getattr(asyncio, "QueueShutDown", None)
    while True:
        try:
            item = await queue.get()
        except Exception as exc:  # Python 3.13+: Queue.shutdown() ends the source
            if shut_down is not None and isinstance(exc, shut_down):
                return
            raise
        yield item


def _job_id(job: Job[Any]) -> str:
    return job.id


def _earlier(job: Job[Any]) -> str | None:
    return "started" if job.in_doubt else None


def _fresh_key(item: object) -> str:
    return uuid.uuid4().hex


def _checked(key: Callable[[T], str]) -> Callable[[T], str]:
    def checked(item: T) -> str:
        value = key(item)
        if not isinstance(value, str) or not value:
            raise UsageError(f"key= must return a non-empty str, got {value!r} for {item!r}")
        return value

    return checked


def _install(
    loop: asyncio.AbstractEventLoop, signals: Sequence[signal.Signals],
    handler: Callable[[signal.Signals], None],
) -> list[signal.Signals]:
    installed: list[signal.Signals] = []
    for signum in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            # Not on Windows' default loop, nor outside the main thread: callers then
            # call stop() themselves.
            loop.add_signal_handler(signum, handler, signal.Signals(signum))
            installed.append(signum)
    return installed
