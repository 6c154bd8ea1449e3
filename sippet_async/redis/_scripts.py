"""The Lua scripts of the shared rate limit: GCRA and the fleet's adaptive state on Redis's
own clock, and the shared pause.

Each script runs atomically inside Redis and reads the time with ``TIME`` there, so the
clocks of the machines running the workers never matter. Times are Redis's clock: the
schedule in integer microseconds, the adaptive state in seconds (``now_us / 1e6``, the
same number Python computes from the ``now_us`` a script returns). The hash of one limit
holds:

* ``tat``: the theoretical arrival time, when the next slot may be granted (GCRA);
* the policy of ``_adaptive.Adaptive``: ``good``, ``cut``, ``epoch``, ``before``,
  ``share``, ``stray`` (missing: never cut), written by the processes (``POLICY``, a
  compare-and-set on ``version``) or by ``SCALE``; ``first``, the time of the first reply
  counted;
* the fleet's counts of the last second, in ``SLOTS + 1`` slots of ``SLOT`` seconds: slot
  ``k`` lives at index ``i = k % (SLOTS + 1)`` as ``n<i>`` (``k``, so a stale slot reads
  as 0), ``o<i>`` (successes), ``l<i>`` (429s), ``b<i>`` (503s with ``Retry-After``).

The rules that read the counts run in Python (``_adaptive``); only the rate curve
(``_adaptive.rate_at``) is here too, in ``CURVE``, because every reservation needs it
(a test holds the two to the same numbers).

The pause key exists, with a PX expiry, while the fleet is paused.
"""

from __future__ import annotations

from typing import Final

from sippet_async import _adaptive as adaptive

__all__ = ["CURVE", "POLICY", "PUSHBACK", "RESERVE", "SCALE"]

# ``_adaptive.rate_at`` (finite ceilings only: a RedisRateLimit always has one), with the
# same constants and the same operations in the same order, so the same doubles.
CURVE: Final = f"""
local function rate_at(ceiling, good, cut, epoch, now)
  if not epoch then
    return ceiling  -- never cut
  end
  good = good or ceiling
  cut = cut or good
  local t = now - epoch
  local rate
  if t < {adaptive.RECOVER!r} then
    local x = t / {adaptive.RECOVER!r} - 1.0
    rate = good + (good - cut) * x * x * x
  else
    t = t - {adaptive.RECOVER!r}
    if t < 1e6 then
      rate = good * (1.0 + {adaptive.PROBE!r} * t * t * t)
    else
      rate = ceiling
    end
  end
  return math.min(ceiling, rate)
end
"""

# The time, the slot, and the counts: shared by the scripts that count.
_PRELUDE: Final = f"""
local now_parts = redis.call('TIME')
local now_us = now_parts[1] * 1000000 + now_parts[2]
local now = now_us / 1000000
local slot = math.floor(now / {adaptive.SLOT!r})
local RING = {adaptive.SLOTS + 1}

-- Add n to this slot's count of kind ('o' successes, 'l' 429s, 'b' 503s).
local function count(kind, n)
  if n <= 0 then
    return
  end
  local i = slot % RING
  if tonumber(redis.call('HGET', KEYS[1], 'n' .. i)) ~= slot then
    redis.call('HSET', KEYS[1], 'n' .. i, slot, 'o' .. i, 0, 'l' .. i, 0, 'b' .. i, 0)
  end
  redis.call('HINCRBY', KEYS[1], kind .. i, n)
  redis.call('HSETNX', KEYS[1], 'first', now)
end

-- Append the fleet's state to out: now_us, slot, first, good, cut, epoch, before, share,
-- stray, version, then the successes, 429s and 503s of slots slot-{adaptive.SLOTS}..slot.
local function fleet(out)
  table.insert(out, now_us)
  table.insert(out, slot)
  local policy = redis.call('HMGET', KEYS[1], 'first', 'good', 'cut', 'epoch', 'before',
                            'share', 'stray', 'version')
  for j = 1, 8 do
    out[#out + 1] = policy[j]  -- false (missing) is kept: a nil reply
  end
  local names = {{}}
  for i = 0, RING - 1 do
    table.insert(names, 'n' .. i)
    table.insert(names, 'o' .. i)
    table.insert(names, 'l' .. i)
    table.insert(names, 'b' .. i)
  end
  local raw = redis.call('HMGET', KEYS[1], unpack(names))
  for part = 1, 3 do
    for k = slot - RING + 1, slot do
      local i = k % RING
      local n = 0
      if tonumber(raw[i * 4 + 1]) == k then
        n = tonumber(raw[i * 4 + 1 + part]) or 0
      end
      table.insert(out, n)
    end
  end
  return out
end
"""

RESERVE: Final = _PRELUDE + CURVE + """
-- KEYS: the state hash, the pause key.
-- ARGV: ceiling rate, window (us), slots wanted, successes to count, idle expiry (ms).
-- Returns {slots granted, delay of the first slot (ns), spacing (ns), pause left (ms),
-- now (us), good, cut, epoch}.
count('o', tonumber(ARGV[4]))
local state = redis.call('HMGET', KEYS[1], 'tat', 'good', 'cut', 'epoch')
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]))
local pause = redis.call('PTTL', KEYS[2])
if pause > 0 then
  return {0, 0, 0, pause, now_us, state[2], state[3], state[4]}
end
local rate = rate_at(tonumber(ARGV[1]), tonumber(state[2]), tonumber(state[3]),
                     tonumber(state[4]), now)
local wanted = tonumber(ARGV[3])
local spacing = tonumber(ARGV[2]) / rate
-- No burst: an idle limit starts now, a busy one where the last grant ended.
local start = math.max(tonumber(state[1]) or 0, now_us)
redis.call('HSET', KEYS[1], 'tat', start + wanted * spacing)
return {wanted, math.floor((start - now_us) * 1000), math.floor(spacing * 1000), 0, now_us,
        state[2], state[3], state[4]}
"""

PUSHBACK: Final = _PRELUDE + """
-- KEYS: the state hash, the pause key.
-- ARGV: pause (ms, 0: none), kind ('l' a 429, 'b' a 503, '': none), successes to count,
-- channel, idle expiry (ms).
-- Returns {pause left (ms), the fleet's state (fleet above) before this pushback}.
count('o', tonumber(ARGV[3]))
local out = fleet({0})
if ARGV[2] ~= '' then
  count(ARGV[2], 1)
end
local pause_ms = tonumber(ARGV[1])
local left = redis.call('PTTL', KEYS[2])
if pause_ms > 0 and pause_ms > left then
  redis.call('SET', KEYS[2], '1', 'PX', pause_ms)
  -- Slots granted before the pause are void (the broadcast drops them): the next one
  -- starts when the pause ends, with no burst. (Otherwise tat stays as it is, or unset.)
  redis.call('HSET', KEYS[1], 'tat', now_us + pause_ms * 1000)
  redis.call('PUBLISH', ARGV[4], pause_ms)
  left = pause_ms
end
out[1] = math.max(left, 0)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]))
return out
"""

POLICY: Final = """
-- KEYS: the state hash.
-- ARGV: the version the policy was read at, idle expiry (ms), then field, value pairs.
-- Writes the policy and returns 1 if no one changed it since; else 0, writing nothing.
if (tonumber(redis.call('HGET', KEYS[1], 'version')) or 0) ~= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""

SCALE: Final = """
local now_parts = redis.call('TIME')
local now = (now_parts[1] * 1000000 + now_parts[2]) / 1000000
""" + CURVE + """
-- KEYS: the state hash.
-- ARGV: ceiling rate, factor (1: only read), lowest rate, idle expiry (ms).
-- Returns the rate now, times factor within [lowest, ceiling], as a string; a factor
-- other than 1 sets the policy there (good = cut = it, from now: it holds, then probes).
local ceiling = tonumber(ARGV[1])
local state = redis.call('HMGET', KEYS[1], 'good', 'cut', 'epoch')
local rate = rate_at(ceiling, tonumber(state[1]), tonumber(state[2]), tonumber(state[3]), now)
local factor = tonumber(ARGV[2])
if factor ~= 1 then
  rate = math.min(ceiling, math.max(tonumber(ARGV[3]), rate * factor))
  redis.call('HSET', KEYS[1], 'good', rate, 'cut', rate, 'epoch', now, 'before', 0)
  redis.call('HINCRBY', KEYS[1], 'version', 1)
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
end
return string.format('%.17g', rate)
"""
