"""What a call worker needs from a shared, durable queue: the ``JobSource`` protocol.

A ``CallWorker`` takes from an ``asyncio.Queue`` or an async iterable, which forget a job
once it is taken. A job source (``sippet_async.redis.RedisCallQueue``) also keeps each
job's outcome record, so several worker processes can share one queue and a dead worker's
jobs are taken over, never dialled twice (docs/protocol.md §12.5):

```
source.jobs() ──Job(in_doubt?)──▶ bulk engine: _policy ──Outcome──▶ source.settle(job, outcome)
  claimed before it is yielded       in doubt: lookup first          done + ack, or left pending
```

The source claims each job before yielding it (only the claimant may send it), and says
whether an earlier holder may already have sent it (``in_doubt``): the bulk engine's policy
then looks it up before any send, exactly as for an item a journal left ``started``.
Nothing here imports a store's client: the source implements this protocol, the worker
only calls it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, runtime_checkable

from sippet_async._errors import SippetError

if TYPE_CHECKING:
    from sippet_async._jobs._report import Outcome

__all__ = ["Job", "JobSource", "TakenOverError"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Job(Generic[T]):
    """One claimed job: its id, its item, its position in the queue, and whether an
    earlier holder (a worker that died) may already have sent it."""

    id: str
    item: T
    index: int = 0
    in_doubt: bool = False


class TakenOverError(SippetError):
    """Another worker took this job over (this one looked dead): it is theirs to settle,
    so this worker neither looks it up nor sends it again."""


@runtime_checkable
class JobSource(Protocol[T]):
    """A durable queue a ``CallWorker`` consumes (see the module docstring)."""

    def session(self, *, request_timeout: float) -> AbstractAsyncContextManager[None]:
        """Join the queue as one consumer (heartbeat, takeover) for the worker's run.

        ``request_timeout``: the longest one send may take; the source must not take over
        a job from a worker that may still be sending it.
        """

    def jobs(self) -> AsyncIterator[Job[T]]:
        """Claimed jobs, one at a time, until the session ends; cancelling the wait leaves
        the job unclaimed in the queue."""

    def owns(self, job: Job[T]) -> Awaitable[bool]:
        """Whether this worker still holds the job's claim (checked before a lookup that
        may lead to a re-send: a worker that only looked dead must not race its heir)."""

    def settle(self, job: Job[T], outcome: Outcome[T], *, final: bool) -> Awaitable[None]:
        """Record ``outcome``. ``final``: the job is done (outcome and acknowledgement in
        one step); otherwise it stays pending for another worker (``not_sent``: it was
        never sent; ``unknown`` after an interrupt: it is looked up before any re-send)."""
