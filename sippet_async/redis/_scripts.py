"""The Lua scripts of the shared rate limit: GCRA on Redis's own clock, and the shared pause.

Each script runs atomically inside Redis and reads the time with ``TIME`` there, so the
clocks of the machines running the workers never matter. Times are integer microseconds of
Redis's clock; the hash of one limit holds:

* ``tat``: the theoretical arrival time, when the next slot may be granted (GCRA);
* ``rate``: the fleet's current rate (requests per second), at most the ceiling each
  process passes; missing means the ceiling;
* ``changed`` / ``decreased``: when ``rate`` last moved / last went down (the adaptive rate).

The pause key exists, with a PX expiry, while the fleet is paused.
"""

from __future__ import annotations

from typing import Final

__all__ = ["PAUSE", "RESERVE", "SCALE"]

# Shared by both scripts: the adaptive rate read from the hash (recovery included).
_RATE: Final = """
local ceiling = tonumber(ARGV[1])
local state = redis.call('HMGET', KEYS[1], 'tat', 'rate', 'changed', 'decreased')
local tat = tonumber(state[1])
local rate = math.min(tonumber(state[2]) or ceiling, ceiling)
local changed = tonumber(state[3]) or 0
local decreased = tonumber(state[4]) or 0
local window = tonumber(ARGV[2])          -- us: a window of 1 s plus the margin
"""

RESERVE: Final = """
-- KEYS: the state hash, the pause key.
-- ARGV: ceiling rate, window (us), slots wanted, recovery step (fraction of the ceiling),
-- recovery interval (us), idle expiry (ms).
-- Returns {slots granted, delay of the first slot (ns), spacing (ns), pause left (ms)}.
local now_parts = redis.call('TIME')
local now = now_parts[1] * 1000000 + now_parts[2]
local pause = redis.call('PTTL', KEYS[2])
if pause > 0 then
  return {0, 0, 0, pause}
end
""" + _RATE + """
local wanted = tonumber(ARGV[3])
-- Recovery (the seam of the shared adaptive policy): one step per interval without a
-- decrease, the first a whole window after it.
if rate < ceiling and now - changed >= tonumber(ARGV[5]) and now - decreased >= window then
  rate = math.min(ceiling, rate + tonumber(ARGV[4]) * ceiling)
  changed = now
end
local spacing = window / rate
-- No burst: an idle limit starts now, a busy one where the last grant ended.
local start = math.max(tat or 0, now)
redis.call('HSET', KEYS[1], 'tat', start + wanted * spacing, 'rate', rate,
           'changed', changed, 'decreased', decreased)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[6]))
return {wanted, math.floor((start - now) * 1000), math.floor(spacing * 1000), 0}
"""

PAUSE: Final = """
-- KEYS: the state hash, the pause key.
-- ARGV: ceiling rate, window (us), pause (ms, 0: none), decrease factor (1: none),
-- lowest rate, channel, idle expiry (ms).
-- Returns the pause left (ms) after this call.
local now_parts = redis.call('TIME')
local now = now_parts[1] * 1000000 + now_parts[2]
""" + _RATE + """
local pause_ms = tonumber(ARGV[3])
local factor = tonumber(ARGV[4])
if factor < 1 and now - decreased >= window then
  rate = math.max(tonumber(ARGV[5]), rate * factor)
  changed = now
  decreased = now
end
local left = redis.call('PTTL', KEYS[2])
redis.call('HSET', KEYS[1], 'rate', rate, 'changed', changed, 'decreased', decreased)
if pause_ms > left then
  redis.call('SET', KEYS[2], '1', 'PX', pause_ms)
  -- Slots granted before the pause are void (the broadcast drops them): the next one
  -- starts when the pause ends, with no burst. (Otherwise tat stays as it is, or unset.)
  redis.call('HSET', KEYS[1], 'tat', now + pause_ms * 1000)
  redis.call('PUBLISH', ARGV[6], pause_ms)
  left = pause_ms
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[7]))
return left
"""

SCALE: Final = """
-- KEYS: the state hash.
-- ARGV: ceiling rate, window (us), factor, lowest rate, idle expiry (ms).
-- Multiplies the shared rate (within [lowest, ceiling]) and returns it, as a string.
local now_parts = redis.call('TIME')
local now = now_parts[1] * 1000000 + now_parts[2]
""" + _RATE + """
local factor = tonumber(ARGV[3])
rate = math.min(ceiling, math.max(tonumber(ARGV[4]), rate * factor))
if factor < 1 then
  decreased = now
end
redis.call('HSET', KEYS[1], 'rate', rate, 'changed', now, 'decreased', decreased)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]))
return tostring(rate)
"""
