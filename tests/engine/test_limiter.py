"""The rate limiter, driven by a virtual clock: no rolling second above R, and >= 0.98 R.

No test here waits: the loop's clock jumps to the next timer (with millisecond-rounded,
noisy lateness, like epoll), so each property is checked on exact timestamps.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest
from aiolimiter import AsyncLimiter
from multidict import CIMultiDict, CIMultiDictProxy

from sippet_async import Counters, Pushback, RateLimit, SippetClient, UsageError
from sippet_async._limits import Limits
from sippet_async._protocol import HttpResponse
from sippet_async.testing import worst_window

from ._support import KEY
from ._virtual import epoll_lateness, run_virtual

WORKERS = 64


async def _drive(acquire: object, seconds: float, *, pause_at: float | None = None,
                 pause_for: float = 0.0, workers: int = WORKERS) -> list[float]:
    """``workers`` tasks acquire in a loop for ``seconds`` of virtual time; the grant times."""
    loop = asyncio.get_running_loop()
    granted: list[float] = []
    paused = False

    async def worker() -> None:
        nonlocal paused
        while loop.time() < seconds:
            if pause_at is not None and not paused and loop.time() >= pause_at:
                paused = True
            if paused and loop.time() < pause_at + pause_for:  # type: ignore[operator]
                await asyncio.sleep(pause_at + pause_for - loop.time())  # type: ignore[operator]
                continue
            await acquire()  # type: ignore[operator]
            granted.append(loop.time())

    await asyncio.gather(*(worker() for _ in range(workers)))
    return [t for t in granted if t < seconds]


@pytest.mark.parametrize("rate", [50, 200, 1000])
def test_no_rolling_second_exceeds_r_and_throughput_is_at_least_98_percent(rate: int) -> None:
    """From the very first request, every rolling second carries <= R, at >= 0.98 R."""
    seconds = 4.0

    async def main() -> list[float]:
        return await _drive(RateLimit(rate).acquire, seconds)

    granted = run_virtual(main, epoll_lateness(seed=rate))
    assert worst_window(granted) <= rate
    assert len(granted) / seconds >= 0.98 * rate


@pytest.mark.parametrize("rate", [50, 1000])
def test_no_burst_after_a_pause(rate: int) -> None:
    """After 2 s without requests, the first second of the restart still carries <= R."""

    async def main() -> list[float]:
        return await _drive(RateLimit(rate).acquire, 6.0, pause_at=2.0, pause_for=2.0)

    granted = run_virtual(main, epoll_lateness(seed=7))
    assert worst_window(granted) <= rate
    assert any(t >= 4.0 for t in granted)


def test_aiolimiter_default_bursts_a_second_quota_which_the_check_detects() -> None:
    """Contrast: aiolimiter's default (a bucket of R per second) lets ~2 R into one second."""
    rate = 200

    async def main() -> list[float]:
        return await _drive(AsyncLimiter(rate, 1.0).acquire, 3.0)

    granted = run_virtual(main, epoll_lateness(seed=1))
    assert worst_window(granted) > 1.5 * rate


async def _against_quota(limiter: RateLimit, quota: int, seconds: float
                        ) -> tuple[list[float], list[float]]:
    """64 tasks send through ``limiter`` to a server admitting ``quota`` per rolling second,
    telling the limiter each answer; the send times, and those of the 429s."""
    loop = asyncio.get_running_loop()
    admitted: list[float] = []
    sent: list[float] = []
    refused: list[float] = []

    async def worker() -> None:
        while loop.time() < seconds:
            await limiter.acquire()
            now = loop.time()
            sent.append(now)
            while admitted and admitted[0] <= now - 1.0:
                admitted.pop(0)
            if len(admitted) < quota:
                admitted.append(now)
                limiter.succeeded()
            else:
                refused.append(now)
                limiter.pushback(Pushback(status=429, retry_after=0.001))

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    return [t for t in sent if t < seconds], refused


def test_a_429_burst_teaches_the_quota_in_one_step_and_probes_rarely() -> None:
    """rate_limit=600 against a 300/s quota: one cut to ~300 within the first second, then
    >= 0.97 of the quota with a failed probe at most every ~10 s, 429s under 0.5%."""

    async def main() -> tuple[list[float], list[float], float]:
        limiter = RateLimit(600)
        sent, refused = await _against_quota(limiter, 300, 30.0)
        return sent, refused, limiter.rate

    sent, refused, rate = run_virtual(main, epoll_lateness(seed=5))
    assert max(refused[:5]) < 1.0  # the first cut: at once
    assert 290 <= rate <= 310
    later = [t for t in refused if t > 2.0]
    probes = [b for a, b in itertools.pairwise([2.0, *later]) if b - a > 2.0]
    assert len(probes) <= 3  # failed probes (429s 2 s apart or more): one per ~10 s
    # (the first second's 429s would be fewer behind the client's Retry-After pause)
    assert len(later) / len(sent) < 0.005
    assert sum(1 for t in sent if t >= 2.0) / 28.0 >= 0.97 * 300


def test_after_a_cut_sends_stay_evenly_paced_at_the_new_rate() -> None:
    """A cut from 200/s to 100/s: no silence (no gap over 3 intervals of the new rate), no
    burst (no rolling second that begins after the cut carries more than the new rate)."""

    async def main() -> tuple[list[float], float, float]:
        loop = asyncio.get_running_loop()
        limiter = RateLimit(200)
        cut_at = 2.0

        async def server() -> None:  # accepts 100 in the second before the cut, then 429s
            nonlocal cut_at
            await asyncio.sleep(cut_at - 1.0)
            for _ in range(100):
                limiter.succeeded()
                await asyncio.sleep(0.01)
            cut_at = loop.time()
            limiter.pushback(Pushback(status=429))
            limiter.pushback(Pushback(status=429))

        task = asyncio.create_task(server())
        granted = await _drive(limiter.acquire, 4.0)
        await task
        assert loop.time() >= cut_at
        return granted, cut_at, limiter.rate

    granted, cut_at, rate = run_virtual(main, epoll_lateness(seed=3))
    assert 85 <= rate <= 100  # the successes of the last second, estimated
    after = [t for t in granted if t >= cut_at]
    gaps = [b - a for a, b in itertools.pairwise(after)]
    assert max(gaps) < 3 / rate
    assert max(gaps[:5]) < 3 / rate  # right after the cut too: no silence
    assert worst_window(after) <= rate * 1.015
    assert len(after) / (4.0 - cut_at) >= 0.97 * rate


def test_rates_below_one_per_second_space_requests() -> None:
    """rate_limit=0.5 means one request per two seconds."""

    async def main() -> list[float]:
        return await _drive(RateLimit(0.5).acquire, 10.0, workers=4)

    granted = run_virtual(main)
    assert worst_window(granted, width=2.0) <= 1
    assert len(granted) >= 4


def _limits(rate: float | None = 100) -> tuple[Limits, Counters, list[float]]:
    counters = Counters()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    limits = Limits(max_concurrency=4, rate_limit=rate, retry_after_cap=60.0, sleep=sleep,
                    counters=counters)
    return limits, counters, slept


def _reply(status: int = 200, **headers: str) -> HttpResponse:
    """A reply whose headers look names up case-insensitively, as the Transport contract
    requires (aiohttp's own type)."""
    folded = CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in headers.items()}))
    return HttpResponse(status=status, headers=folded, body=b"")


def test_hints_that_leave_too_little_for_the_reset_slow_the_client() -> None:
    """RateLimit-Remaining: 3 with 10 s to the reset (we would send ~985): rate x0.7."""

    async def main() -> tuple[float, float, int]:
        limits, counters, _ = _limits()
        assert limits.limiter is not None
        before = limits.limiter.rate
        limits.observe("list_contacts", 1, _reply(RateLimit_Remaining="3", RateLimit_Reset="10"))
        return before, limits.limiter.rate, counters.pauses

    before, after, pauses = run_virtual(main)
    assert after == pytest.approx(0.7 * before, rel=0.02)
    assert pauses == 0


def test_plentiful_hints_change_nothing() -> None:
    """RateLimit-Remaining: 900 with 1 s to the reset: no slow-down, no pause."""

    async def main() -> tuple[float, float]:
        limits, _, _ = _limits()
        assert limits.limiter is not None
        before = limits.limiter.rate
        limits.observe("list_contacts", 1, _reply(RateLimit_Remaining="900", RateLimit_Reset="1"))
        return before, limits.limiter.rate

    before, after = run_virtual(main)
    assert after == before


def test_a_single_429_pauses_the_gate_but_keeps_the_rate() -> None:
    """A 429 with Retry-After: 2 closes the gate for 2 s and counts a 429 and a pause; one
    429 alone is no quota met, so the rate stays."""

    async def main() -> tuple[bool, float, float, Counters, list[float]]:
        limits, counters, slept = _limits()
        assert limits.limiter is not None
        before = limits.limiter.rate
        limits.observe("create_call", 1, _reply(429, Retry_After="2"))
        closed = limits.gate.closed()
        await limits.admit("create_call")  # waits through the injected sleep
        return closed, before, limits.limiter.rate, counters, slept

    closed, before, after, counters, slept = run_virtual(main)
    assert closed
    assert after == before
    assert (counters.rate_limited, counters.pauses) == (1, 1)
    assert len(slept) == 1
    assert 1.9 < slept[0] <= 2.0


def test_a_single_503_pauses_without_a_cut_a_cluster_cuts() -> None:
    """One 503 with Retry-After among 100 successes: a pause, no cut; ten more within the
    second: 0.7 x what the server accepted."""

    async def main() -> list[float]:
        limits, _, _ = _limits(rate=200)
        limiter = limits.limiter
        assert isinstance(limiter, RateLimit)
        for _ in range(100):
            limits.observe("list_contacts", 1, _reply())
            await asyncio.sleep(0.01)
        rates = []
        limits.observe("list_contacts", 1, _reply(503, Retry_After="0"))
        rates.append(limiter.rate)
        for _ in range(10):
            limits.observe("list_contacts", 1, _reply(503, Retry_After="0"))
        rates.append(limiter.rate)
        return rates

    single, cluster = run_virtual(main)
    assert single == RateLimit(200).rate
    assert cluster == pytest.approx(0.7 * 100 / 1.015, rel=0.05)


def test_without_a_rate_limit_the_first_429_creates_a_limiter_at_the_learned_rate() -> None:
    """rate_limit=None: 150 successes in the last second, then a 429: a limiter at ~150/s."""

    async def main() -> tuple[object, float]:
        limits, _, _ = _limits(rate=None)
        for _ in range(150):
            limits.observe("list_contacts", 1, _reply())
            await asyncio.sleep(1 / 150)
        before = limits.limiter
        limits.observe("list_contacts", 1, _reply(429, Retry_After="1"))
        assert isinstance(limits.limiter, RateLimit)
        return before, limits.limiter.state.good

    before, learned = run_virtual(main)
    assert before is None
    assert learned == pytest.approx(150, rel=0.02)


def test_without_a_rate_limit_the_gate_still_pauses() -> None:
    """rate_limit=None: no limiter, but a 503 with Retry-After still holds requests back."""

    async def main() -> tuple[bool, int]:
        limits, counters, _ = _limits(rate=None)
        limits.observe("list_contacts", 1, _reply(503, Retry_After="1"))
        return limits.gate.closed(), counters.pauses

    assert run_virtual(main) == (True, 1)


def test_the_built_in_limiter_judges_pushback() -> None:
    """Scarce hints lower the rate; hints with plenty left, none left (the gate's business),
    or a single 429 (a stray: no quota met) do not."""

    async def main() -> list[float]:
        rates = []
        for pushback in (Pushback(status=200, remaining=900, reset=1.0),
                         Pushback(status=200, remaining=0, reset=1.0),
                         Pushback(status=429, retry_after=1.0),
                         Pushback(status=200, remaining=3, reset=10.0)):
            limiter = RateLimit(100)
            limiter.pushback(pushback)
            rates.append(limiter.rate / RateLimit(100).rate)
        return rates

    assert [round(r, 2) for r in run_virtual(main)] == [1.0, 1.0, 1.0, 0.7]


def test_an_exhausted_window_pauses_without_lowering_the_rate() -> None:
    """RateLimit-Remaining: 0 with the reset in 1 s closes the gate; the rate stays."""

    async def main() -> tuple[bool, float, float]:
        limits, _, _ = _limits()
        assert isinstance(limits.limiter, RateLimit)
        before = limits.limiter.rate
        limits.observe("list_contacts", 1, _reply(RateLimit_Remaining="0", RateLimit_Reset="1"))
        return limits.gate.closed(), before, limits.limiter.rate

    closed, before, after = run_virtual(main)
    assert closed
    assert after == before


def test_rate_limit_takes_a_limiter_instance() -> None:
    """An instance is used as it is; a class (not instantiated) is refused like a bad number."""
    limiter = RateLimit(5)
    limits = Limits(max_concurrency=1, rate_limit=limiter, retry_after_cap=1.0,
                    sleep=asyncio.sleep, counters=Counters())
    assert limits.limiter is limiter
    with pytest.raises(UsageError, match="rate_limit must be a positive number"):
        SippetClient(KEY, rate_limit=RateLimit)  # type: ignore[arg-type]


def test_the_built_in_limiter_names_its_own_argument() -> None:
    """RateLimit(0) says per_second; SippetClient(rate_limit=0) still says rate_limit."""
    with pytest.raises(UsageError, match="per_second must be a positive number"):
        RateLimit(0)
    with pytest.raises(UsageError, match="rate_limit must be a positive number"):
        SippetClient(KEY, rate_limit=0)
