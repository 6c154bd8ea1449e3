"""The fleet's Redis parts: many processes, on many machines, acting as one client.

Installed with ``pip install "sippet_async[redis]"`` (redis-py's asyncio client); the rest of
sippet_async never imports it.

* ``RedisRateLimit`` — one rate limit and one pause shared by every process using a key
  (``_ratelimit``, its Lua scripts in ``_scripts``);
* ``RedisUnavailableError`` — Redis did not answer (``_connection``).
"""

from ._connection import RedisUnavailableError
from ._ratelimit import RedisRateLimit

__all__ = ["RedisRateLimit", "RedisUnavailableError"]
