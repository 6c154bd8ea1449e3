"""The fleet's Redis parts: many processes, on many machines, acting as one client.

Installed with ``pip install "sippet_async[redis]"`` (redis-py's asyncio client); the rest of
sippet_async never imports it.

* ``RedisRateLimit`` — one rate limit and one pause shared by every process using a key
  (``_ratelimit``, its Lua scripts in ``_scripts``);
* ``RedisCallQueue`` — a call queue on Redis Streams that ``CallWorker.run`` consumes
  (``_queue``);
* ``RedisCallLedger`` — its per-job outcome record, usable around any other queue
  (``_ledger``);
* ``RedisUnavailableError`` — Redis did not answer (``_connection``).
"""

try:
    import redis as _redis  # noqa: F401 - only to name the extra when it is missing
except ImportError as _missing:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        'sippet_async.redis needs the [redis] extra: pip install "sippet_async[redis]"'
    ) from _missing

from sippet_async.redis._connection import RedisUnavailableError
from sippet_async.redis._ledger import RedisCallLedger
from sippet_async.redis._queue import RedisCallQueue
from sippet_async.redis._ratelimit import RedisRateLimit

__all__ = ["RedisCallLedger", "RedisCallQueue", "RedisRateLimit", "RedisUnavailableError"]
