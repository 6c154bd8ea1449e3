"""The per-job outcome record that keeps a fleet of call workers from dialling twice.

One Redis hash per job, ``{prefix}:job:{job_id}``, moves through three states, each step one
Lua script (atomic on the server):

```
(none) / queued ──claim──▶ claimed(owner) ──finish──▶ done(outcome)   [+ XACK, same script]
                              │ owner's heartbeat expired: claim ─▶ claimed(new owner), in doubt
                              └ release (never sent) ─▶ queued
```

Only the worker whose ``claim`` created the claim may send the job; a job taken over from a
dead owner comes back *in doubt* (it may have been sent), and the worker's policy looks it
up before any send (docs/protocol.md §12.5). ``finish`` writes the outcome and acknowledges
the queue entry in the same script, so a job is never done-but-pending or acked-but-open.
An owner is alive while its key ``{prefix}:alive:{owner}`` exists: ``beat`` renews it.

The ledger works on its own, around any queue (arq, taskiq, Celery): claim before the
dial, look up when ``in_doubt``, finish after.
"""

from __future__ import annotations

import math
from typing import Any, Final, Literal

import msgspec

from sippet_async._errors import SippetError, UsageError
from sippet_async._jobs._report import Outcome, Status
from sippet_async.redis._connect import connect, translated

__all__ = ["Claim", "RedisCallLedger"]

Claim = Literal["new", "in_doubt", "busy", "done"]

# Long enough to ride out a stalled event loop or a GC pause of a busy worker; the
# takeover waits this long after a worker dies.
DEFAULT_HEARTBEAT: Final = 10.0

_CLAIM: Final = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'done' then return 'done' end
if (not state) or state == 'queued' then
  redis.call('HSET', KEYS[1], 'state', 'claimed', 'owner', ARGV[1])
  return 'new'
end
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner ~= ARGV[1] and owner and redis.call('EXISTS', ARGV[2] .. owner) == 1 then
  return 'busy'
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1])
return 'in_doubt'
"""

# ARGV: owner, outcome, item, group, entry id ('' when no queue entry to acknowledge).
_FINISH: Final = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'done' then
  local owner = redis.call('HGET', KEYS[1], 'owner')
  if state == 'claimed' and owner ~= ARGV[1] then return 0 end
  redis.call('HSET', KEYS[1], 'state', 'done', 'owner', ARGV[1], 'outcome', ARGV[2],
             'item', ARGV[3])
end
-- pcall: after a Redis restart without persistence the group may be gone.
if ARGV[5] ~= '' then redis.pcall('XACK', KEYS[2], ARGV[4], ARGV[5]) end
return 1
"""

_RELEASE: Final = """
if redis.call('HGET', KEYS[1], 'state') == 'claimed'
   and redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'state', 'queued')
  redis.call('HDEL', KEYS[1], 'owner')
  return 1
end
return 0
"""


class _Stored(msgspec.Struct, omit_defaults=True):
    """An outcome as the record keeps it; the error as ``"TypeName: message"``."""

    status: Status
    index: int = 0
    data: Any = None
    error: str | None = None
    attempts: int = 0
    record_id: str | None = None
    reconciled: bool = False


_encode: Final = msgspec.json.Encoder().encode
_decode_stored: Final = msgspec.json.Decoder(_Stored).decode
_decode_any: Final = msgspec.json.Decoder().decode


class RedisCallLedger:
    """Per-job outcome records in Redis: claim before the dial, finish after.

    Example:
        ledger = RedisCallLedger("redis://127.0.0.1:6379/0", prefix="calls")
        claim = await ledger.claim("order-42", owner="host-1/pid-7")
        if claim == "new":  # only this owner may dial; "in_doubt": look it up first
            outcome = ...
            await ledger.finish("order-42", outcome, owner="host-1/pid-7")
    """

    def __init__(self, url: str, *, prefix: str = "sippet:ledger",
                 heartbeat: float = DEFAULT_HEARTBEAT) -> None:
        """Nothing connects until the first command.

        Args:
            prefix: the keys' namespace: ``{prefix}:job:{id}``, ``{prefix}:alive:{owner}``.
            heartbeat: seconds an owner counts as alive after its last ``beat``.
        """
        if not isinstance(url, str) or "://" not in url:
            raise UsageError(f"url must be a redis:// URL, got {url!r}")
        if not isinstance(prefix, str) or not prefix:
            raise UsageError(f"prefix must be a non-empty string, got {prefix!r}")
        if isinstance(heartbeat, bool) or not isinstance(heartbeat, int | float) \
                or not math.isfinite(heartbeat) or heartbeat <= 0:
            raise UsageError(f"heartbeat must be seconds > 0, got {heartbeat!r}")
        self.url = url
        self.prefix = prefix
        self.heartbeat = float(heartbeat)
        self._redis = connect(url)
        self._claim = self._redis.register_script(_CLAIM)
        self._finish = self._redis.register_script(_FINISH)
        self._release = self._redis.register_script(_RELEASE)

    def __repr__(self) -> str:
        return f"RedisCallLedger(prefix={self.prefix!r}, heartbeat={self.heartbeat:g})"

    def record_key(self, job_id: str) -> str:
        """The Redis key of a job's record."""
        return f"{self.prefix}:job:{job_id}"

    async def claim(self, job_id: str, *, owner: str) -> Claim:
        """Claim a job before sending it: ``new`` (send it), ``in_doubt`` (taken over from
        a dead owner: look it up before any send), ``busy`` (a live owner has it: leave it)
        or ``done`` (it has its outcome)."""
        async with translated(self.url):
            answer = await self._claim(keys=[self.record_key(job_id)],
                                       args=[owner, f"{self.prefix}:alive:"])
        claim = answer.decode() if isinstance(answer, bytes) else str(answer)
        assert claim in ("new", "in_doubt", "busy", "done"), claim
        return claim  # type: ignore[return-value]

    async def finish(self, job_id: str, outcome: Outcome[Any], *, owner: str,
                     ack: tuple[str, str, str] | None = None) -> bool:
        """Record the job's final outcome and, in the same step, acknowledge its queue
        entry ``ack=(stream, group, entry_id)``. False when another owner took the job
        over meanwhile (its outcome is theirs to record)."""
        stream, group, entry = ack if ack is not None else (self.record_key(job_id), "", "")
        stored = _Stored(
            outcome.status, outcome.index, outcome.data,
            None if outcome.error is None else f"{type(outcome.error).__name__}: {outcome.error}",
            outcome.attempts, outcome.record_id, outcome.reconciled)
        async with translated(self.url):
            done = await self._finish(
                keys=[self.record_key(job_id), stream],
                args=[owner, _encode(stored), _encode(outcome.item), group, entry])
        return bool(done)

    async def owner(self, job_id: str) -> str | None:
        """Who holds the job's claim (None when unclaimed or unknown)."""
        async with translated(self.url):
            held: Any = await self._redis.hget(self.record_key(job_id), "owner")
        return None if held is None else bytes(held).decode()

    async def release(self, job_id: str, *, owner: str) -> None:
        """Give back a claim whose job was never sent: the next claim is ``new``."""
        async with translated(self.url):
            await self._release(keys=[self.record_key(job_id)], args=[owner])

    async def outcome(self, job_id: str) -> Outcome[Any] | None:
        """The job's final outcome, or None while it has none.

        Its ``error``, if any, is a ``SippetError`` whose message starts with the original
        error's type name.
        """
        async with translated(self.url):
            raw, item = await self._redis.hmget(self.record_key(job_id), ["outcome", "item"])
        if raw is None:
            return None
        stored = _decode_stored(raw)
        return Outcome(stored.index, None if item is None else _decode_any(item),
                       stored.status, data=stored.data,
                       error=None if stored.error is None else SippetError(stored.error),
                       attempts=stored.attempts, record_id=stored.record_id,
                       reconciled=stored.reconciled, _key=job_id)

    async def beat(self, owner: str) -> None:
        """Say ``owner`` is alive for the next ``heartbeat`` seconds."""
        async with translated(self.url):
            await self._redis.set(f"{self.prefix}:alive:{owner}", b"1",
                                  px=max(1, int(self.heartbeat * 1000)))

    async def leave(self, owner: str) -> None:
        """Say ``owner`` has stopped: what it still holds may be taken over at once."""
        async with translated(self.url):
            await self._redis.delete(f"{self.prefix}:alive:{owner}")

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()
