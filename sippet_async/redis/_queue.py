"""A call queue shared by many worker processes: Redis Streams with a consumer group.

```
put(item, job_id) ──(record queued + XADD, one script: same job_id, one job)──▶ stream
worker: XREADGROUP ──▶ ledger.claim ──new/in_doubt──▶ CallWorker ──▶ ledger.finish + XACK
        a dead worker's pending entries: XCLAIM, once its heartbeat expired and the entry
        has been idle longer than one request can take
```

Each job's outcome record is a ``RedisCallLedger`` record under the stream's name; the
queue implements the ``JobSource`` protocol that ``CallWorker.run`` consumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Final, Generic, TypeVar

import msgspec
from redis.exceptions import ResponseError

from sippet_async._errors import UsageError
from sippet_async._jobs._report import Outcome
from sippet_async._jobs._source import Job
from sippet_async.redis._connect import translated
from sippet_async.redis._ledger import DEFAULT_HEARTBEAT, RedisCallLedger

__all__ = ["RedisCallQueue"]

T = TypeVar("T")

# How long one read waits for new jobs before looking for a dead worker's jobs again.
BLOCK_SECONDS: Final = 1.0
# Pending entries looked at per takeover scan.
SCAN_COUNT: Final = 256
MAX_JOB_ID: Final = 200  # leaves room in a 255-character Idempotency-Key (§12.4)

_PUT: Final = """
if redis.call('HSETNX', KEYS[1], 'state', 'queued') == 0 then return 0 end
local index = redis.call('INCR', KEYS[3]) - 1
local entry = redis.call('XADD', KEYS[2], '*', 'job', ARGV[1], 'item', ARGV[2], 'index', index)
redis.call('HSET', KEYS[1], 'item', ARGV[2], 'index', index, 'entry', entry)
return 1
"""

log: Final = logging.getLogger("sippet_async")

_encode: Final = msgspec.json.Encoder().encode
_decode: Final = msgspec.json.Decoder().decode


class RedisCallQueue(Generic[T]):
    """Call requests on a Redis stream, consumed by a group of ``CallWorker`` processes.

    Example:
        queue = RedisCallQueue("redis://127.0.0.1:6379/0", stream="sippet:calls",
                               group="dialers")
        await queue.put({"toE164": "+15555550123"}, job_id="order-42")
        await CallWorker(client, report, reconcile=by_number).run(queue)
        outcome = await queue.outcome("order-42")  # None while pending
    """

    def __init__(self, url: str, *, stream: str = "sippet:calls", group: str = "dialers",
                 consumer: str | None = None, heartbeat: float = DEFAULT_HEARTBEAT,
                 claim_idle: float | None = None) -> None:
        """Nothing connects until the first command.

        Args:
            stream: the stream's key; job records are kept under ``{stream}:job:{id}``.
            group: the consumer group the workers share.
            consumer: this worker's name in the group (default: host, pid and a random
                suffix; it must differ between live workers).
            heartbeat: a worker that has not renewed its heartbeat for this many seconds
                counts as dead, and its jobs are taken over.
            claim_idle: besides, a job is only taken over once it has been pending this
                long; it must exceed the client's request timeout (default: that
                timeout plus one second), so a job still being sent is never taken.
        """
        for name, value in (("stream", stream), ("group", group)):
            if not isinstance(value, str) or not value:
                raise UsageError(f"{name} must be a non-empty string, got {value!r}")
        if claim_idle is not None and (isinstance(claim_idle, bool) or not isinstance(
                claim_idle, int | float) or not math.isfinite(claim_idle) or claim_idle <= 0):
            raise UsageError(f"claim_idle must be seconds > 0, got {claim_idle!r}")
        self.ledger = RedisCallLedger(url, prefix=stream, heartbeat=heartbeat)
        self.url = url
        self.stream = stream
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.claim_idle = claim_idle
        self._redis = self.ledger._redis
        self._put = self._redis.register_script(_PUT)
        self._buffer: deque[tuple[bytes, dict[bytes, bytes] | None]] = deque()
        self._entries: dict[str, bytes] = {}  # job id -> its stream entry, while held
        self._idle_ms = 0
        self._scanned = 0.0

    def __repr__(self) -> str:
        return (f"RedisCallQueue(stream={self.stream!r}, group={self.group!r}, "
                f"consumer={self.consumer!r})")

    # -- producers ----------------------------------------------------------------------

    async def put(self, item: T, *, job_id: str | None = None) -> str:
        """Queue one job and return its id; a ``job_id`` already queued adds nothing."""
        if job_id is None:
            job_id = uuid.uuid4().hex
        if not isinstance(job_id, str) or not job_id or len(job_id) > MAX_JOB_ID \
                or not job_id.isprintable():
            raise UsageError(f"job_id must be a printable string of 1-{MAX_JOB_ID} "
                             f"characters, got {job_id!r}")
        try:
            payload = _encode(item)
        except (TypeError, msgspec.EncodeError) as exc:
            raise UsageError(f"item {item!r} is not JSON-encodable: {exc}") from exc
        async with translated(self.url):
            await self._put(keys=[self.ledger.record_key(job_id), self.stream,
                                  f"{self.stream}:seq"], args=[job_id, payload])
        return job_id

    async def outcome(self, job_id: str) -> Outcome[Any] | None:
        """The job's final outcome, or None while it is pending (or unknown to the queue)."""
        return await self.ledger.outcome(job_id)

    async def length(self) -> int:
        """Jobs ever queued on the stream (each job id once), done or not."""
        async with translated(self.url):
            return int(await self._redis.xlen(self.stream))

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.ledger.aclose()

    async def __aenter__(self) -> RedisCallQueue[T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- the JobSource protocol (what CallWorker.run calls) -------------------------------

    @contextlib.asynccontextmanager
    async def session(self, *, request_timeout: float) -> AsyncIterator[None]:
        """Join the group as ``consumer``, beat the heartbeat until the session ends, then
        leave: whatever this worker still holds may be taken over at once."""
        idle = request_timeout + 1.0 if self.claim_idle is None else self.claim_idle
        if idle <= request_timeout:
            raise UsageError(
                f"claim_idle ({idle:g}s) must exceed the client's request timeout "
                f"({request_timeout:g}s): a job still being sent would be taken over")
        self._idle_ms = int(idle * 1000)
        await self._create_group()
        await self.ledger.beat(self.consumer)
        # Stopped by an event, not by cancelling: a Redis command cancelled mid-flight can
        # leave its pooled connection waiting forever (seen with redis-py 5.0.1), and the
        # ledger shares that pool. The last beat in flight is awaited instead.
        stop = asyncio.Event()
        beating = asyncio.create_task(self._beat(stop), name="sippet-heartbeat")
        try:
            yield
        finally:
            stop.set()
            await beating
            with contextlib.suppress(Exception):  # best effort: else it expires
                await self.ledger.leave(self.consumer)

    async def jobs(self) -> AsyncIterator[Job[T]]:
        """Claimed jobs: a dead worker's first, then new ones, until cancelled."""
        while True:
            if not self._buffer:
                await self._refill()
                continue
            entry, fields = self._buffer.popleft()
            job = await self._take(entry, fields)
            if job is not None:
                yield job

    async def owns(self, job: Job[T]) -> bool:
        """Whether this worker still holds the job's claim. A record lost with a Redis
        restart counts as held: nobody else can have taken it over."""
        return await self.ledger.owner(job.id) in (self.consumer, None)

    async def settle(self, job: Job[T], outcome: Outcome[T], *, final: bool) -> None:
        """Record a final outcome and acknowledge the entry in one step; else leave the job
        pending (released if it was never sent, claimed and in doubt if it may have been)."""
        entry = self._entries.pop(job.id, b"")
        if final:
            if not await self.ledger.finish(job.id, outcome, owner=self.consumer,
                                            ack=(self.stream, self.group, entry.decode())):
                log.warning("job %s was taken over by another worker; its outcome (%s) "
                            "here is not recorded", job.id, outcome.status)
        elif outcome.status == "not_sent":
            await self.ledger.release(job.id, owner=self.consumer)

    # -- inside -------------------------------------------------------------------------

    async def _beat(self, stop: asyncio.Event) -> None:
        period = self.ledger.heartbeat / 3
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), period)
            if stop.is_set():
                return
            with contextlib.suppress(Exception):  # a blip: the next beat tries again
                await self.ledger.beat(self.consumer)

    async def _create_group(self) -> None:
        async with translated(self.url):
            try:
                await self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def _refill(self) -> None:
        """Take over a dead worker's jobs if a scan is due, else wait for new ones."""
        now = time.monotonic()
        if now - self._scanned >= self.ledger.heartbeat / 2:
            self._scanned = now
            await self._take_over()
            if self._buffer:
                return
        async with translated(self.url):
            try:
                read: Any = await self._redis.xreadgroup(
                    self.group, self.consumer, {self.stream: ">"}, count=1,
                    block=int(BLOCK_SECONDS * 1000))
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await self._create_group()  # Redis restarted without its data
                return
        for _, entries in read or ():
            self._buffer.extend(entries)

    async def _take_over(self) -> None:
        async with translated(self.url):
            try:
                pending: Any = await self._redis.xpending_range(
                    self.stream, self.group, min="-", max="+", count=SCAN_COUNT,
                    idle=self._idle_ms)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await self._create_group()
                return
            owners = {p["consumer"] for p in pending if p["consumer"] != self.consumer.encode()}
            dead: set[bytes] = set()
            for owner in owners:
                if not await self._redis.exists(f"{self.stream}:alive:{owner.decode()}"):
                    dead.add(owner)
            ids = [p["message_id"] for p in pending if p["consumer"] in dead]
            if ids:
                claimed: Any = await self._redis.xclaim(self.stream, self.group, self.consumer,
                                                   self._idle_ms, ids)
                self._buffer.extend(claimed)

    async def _take(self, entry: bytes, fields: dict[bytes, bytes] | None) -> Job[T] | None:
        if not fields or b"job" not in fields or b"item" not in fields:
            async with translated(self.url):  # trimmed away, or not ours: nothing to do
                await self._redis.xack(self.stream, self.group, entry)
            return None
        job_id = fields[b"job"].decode()
        claim = await self.ledger.claim(job_id, owner=self.consumer)
        if claim == "busy":  # a live worker has it (it was delivered twice)
            return None
        if claim == "done":
            async with translated(self.url):
                await self._redis.xack(self.stream, self.group, entry)
            return None
        self._entries[job_id] = entry
        return Job(job_id, _decode(fields[b"item"]), int(fields.get(b"index", b"0")),
                   in_doubt=claim == "in_doubt")
