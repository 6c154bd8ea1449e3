"""The Redis parts of a fleet of workers: ``pip install "sippet_async[redis]"``.

``RedisCallQueue`` is a call queue on Redis Streams that ``CallWorker.run`` consumes;
``RedisCallLedger`` is its per-job outcome record, usable around any other queue.
``import sippet_async`` never imports this package (nor redis).
"""

try:
    import redis as _redis  # noqa: F401 - only to name the extra when it is missing
except ImportError as _missing:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        'sippet_async.redis needs the [redis] extra: pip install "sippet_async[redis]"'
    ) from _missing

from sippet_async.redis._connect import RedisUnavailableError
from sippet_async.redis._ledger import RedisCallLedger
from sippet_async.redis._queue import RedisCallQueue

__all__ = ["RedisCallLedger", "RedisCallQueue", "RedisUnavailableError"]
