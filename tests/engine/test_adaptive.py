"""The adaptive rules, pure: time is a number passed in, nothing waits (issue 12)."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import pytest

from sippet_async import _adaptive as adaptive
from sippet_async._adaptive import Adaptive


def _steady(state: Adaptive, rate: float, start: float, seconds: float) -> Adaptive:
    """``rate`` successes per second, evenly, from ``start`` for ``seconds``."""
    n = round(rate * seconds)
    for i in range(n):
        state = adaptive.succeeded(state, start + i / rate)
    return state


def test_a_429_burst_sets_the_rate_to_what_the_server_accepted_in_one_step() -> None:
    """600/s configured, the server accepts 300 in the last second: the rate becomes 300."""
    state = _steady(adaptive.start(600.0), 300.0, 10.0, 2.0)
    now = 12.0
    state = adaptive.limited(state, now)
    assert adaptive.rate_at(state, now) == 600.0  # one 429 is a stray: nothing changes
    state = adaptive.limited(state, now + 0.001)
    assert adaptive.rate_at(state, now + 0.001) == pytest.approx(300.0, rel=0.01)
    assert state.good == state.cut == pytest.approx(300.0, rel=0.01)


def test_one_cut_per_window_and_never_above_the_current_rate() -> None:
    """More 429s within the window of a cut change nothing; a 429 never raises the rate."""
    state = _steady(adaptive.start(600.0), 300.0, 0.0, 2.0)
    for k in range(5):
        state = adaptive.limited(state, 2.0 + k * 0.01)
    learned = state
    state = _steady(state, 100.0, 2.05, 0.5)  # the server now accepts fewer...
    for k in range(5):
        state = adaptive.limited(state, 2.6 + k * 0.01)
    assert state.epoch == learned.epoch  # ...but the window of the cut has not passed
    fast = _steady(adaptive.start(100.0), 300.0, 0.0, 2.0)
    fast = adaptive.limited(adaptive.limited(fast, 2.0), 2.0)
    assert adaptive.rate_at(fast, 2.0) == 100.0  # accepted 300 > the current 100


def test_a_stray_503_never_cuts_but_a_cluster_does() -> None:
    """One 503 per 500 replies: no cut. 10% of replies 503 within a second: 0.7 x accepted."""
    state = _steady(adaptive.start(500.0), 500.0, 0.0, 3.0)
    stray = adaptive.busy(state, 3.0)
    assert adaptive.rate_at(stray, 3.0) == 500.0
    cluster = state
    for k in range(50):
        cluster = adaptive.busy(cluster, 3.0 + k * 0.001)
    assert adaptive.rate_at(cluster, 3.05) == pytest.approx(0.7 * 500.0, rel=0.02)
    assert cluster.good == pytest.approx(500.0, rel=0.03)  # the last second, estimated


def test_the_recovery_curve_returns_fast_then_probes_slowly() -> None:
    """After a cut from 100 to 70: 96% of the way back in 1 s, all of it in 2 s; then
    +1.5% after 10 s more, +12% after 20 s, never above the ceiling."""
    state = Adaptive(ceiling=200.0, floor=5.0, good=100.0, cut=70.0, epoch=0.0)
    curve = [round(adaptive.rate_at(state, t), 1) for t in (0.0, 0.5, 1.0, 2.0, 7.0, 12.0,
                                                             22.0, 32.0, 60.0)]
    assert curve == [70.0, 87.3, 96.2, 100.0, 100.2, 101.5, 112.0, 140.5, 200.0]


def test_plentiful_hints_change_nothing_scarce_ones_cut() -> None:
    """3 requests left for a 10 s reset: 0.7 x; 900 left for 1 s, or 0 left: unchanged."""
    state = adaptive.start(100.0)
    assert adaptive.hinted(state, 1.0, 900, 1.0) == state
    assert adaptive.hinted(state, 1.0, 0, 1.0) == state
    cut = adaptive.hinted(state, 1.0, 3, 10.0)
    assert adaptive.rate_at(cut, 1.0) == pytest.approx(70.0)


def test_no_ceiling_learns_from_the_first_429_and_sets_a_floor() -> None:
    """rate_limit=None: unlimited until a 429; then the accepted rate, floored at 5% of it."""
    state = adaptive.start(math.inf)
    assert adaptive.rate_at(state, 0.0) == math.inf
    state = adaptive.learn(_steady(state, 250.0, 0.0, 1.0), 1.0)
    assert adaptive.rate_at(state, 1.0) == pytest.approx(250.0, rel=0.01)
    assert state.floor == pytest.approx(12.5, rel=0.01)


def test_the_counts_forget_what_is_older_than_a_second() -> None:
    """Successes two seconds ago teach nothing about the quota now."""
    state = _steady(adaptive.start(600.0), 300.0, 0.0, 1.0)
    assert adaptive.accepted(state, 1.0) == pytest.approx(300.0, rel=0.01)
    assert adaptive.accepted(state, 1.5) == pytest.approx(150.0, rel=0.05)
    assert adaptive.accepted(state, 3.0) == 0.0


def test_a_young_job_learns_nothing_until_its_counts_span_a_second() -> None:
    """A 429 cluster 0.1 s into a job that sent 430/s changes nothing (43 successes say
    nothing of a quota per second); at 1.2 s the successes of the last second do."""
    state = _steady(adaptive.start(1000.0), 430.0, 5.0, 0.1)
    state = adaptive.limited(adaptive.limited(state, 5.1), 5.1)
    assert adaptive.rate_at(state, 5.1) == 1000.0
    state = _steady(state, 430.0, 5.1, 1.1)
    for _ in range(3):
        state = adaptive.limited(state, 6.2)
    assert adaptive.rate_at(state, 6.2) == pytest.approx(430.0, rel=0.03)


def test_a_cut_that_changes_nothing_is_undone_and_the_noise_is_remembered() -> None:
    """Every 20th reply a 429 whatever the rate (a proxy's noise): the first cluster cuts
    to the accepted rate, 429s go on at the same share, so the cut is undone within the
    verdict window and none follows: no downward spiral."""
    run = _simulate(adaptive.start(400.0), seconds=60.0, stray_every=20)
    assert run.state.stray == pytest.approx(0.05, abs=0.01)
    assert min(run.rates[5:]) >= 0.97 * 400.0  # 5 s after the start, the rate holds
    assert run.cuts == 1


def test_a_real_limit_is_learned_and_probed_rarely() -> None:
    """600/s configured against 300 accepted in any rolling second (and no pause to slow
    the first second): the rate is ~300 two seconds in, stays within 10% of it for a
    minute, and from then on at most 2% of requests are 429s: one failed probe per ~10 s
    or fewer."""
    run = _simulate(adaptive.start(600.0), seconds=60.0, limit=300)
    assert all(270.0 <= r <= 330.0 for r in run.rates[2:])
    assert sum(run.limited_in[2:]) / sum(run.sent_in[2:]) <= 0.02
    assert run.cuts <= 1 + 60 // 10


def test_a_limit_with_noise_on_top_is_learned_without_a_spiral() -> None:
    """300/s accepted, and every 20th request a 429 anyway: the limit is held, not cut
    towards zero by the noise."""
    run = _simulate(adaptive.start(600.0), seconds=60.0, limit=300, stray_every=20)
    assert min(run.rates[10:]) >= 0.85 * 300.0
    assert max(run.rates[10:]) <= 1.15 * 300.0 / (1 - 0.05)


def test_no_ceiling_and_noise_restores_no_limit() -> None:
    """rate_limit=None against 5% stray 429s: a learned cut is undone back to no limit."""
    state = _steady(adaptive.start(math.inf), 400.0, 0.0, 1.0)
    state = adaptive.learn(state, 1.0)
    assert adaptive.rate_at(state, 1.0) == pytest.approx(400.0, rel=0.01)
    run = _simulate(state, seconds=10.0, stray_every=20, start=1.0, cap=400.0)
    assert adaptive.rate_at(run.state, 11.0) == math.inf


@dataclass
class _Run:
    state: Adaptive
    sent: int = 0
    limited: int = 0
    cuts: int = 0
    rates: list[float] = field(default_factory=list)  # rate_at each whole second
    sent_in: list[int] = field(default_factory=list)  # requests sent in each second
    limited_in: list[int] = field(default_factory=list)  # 429s in each second


def _simulate(state: Adaptive, *, seconds: float, limit: int | None = None,
              stray_every: int | None = None, start: float = 0.0,
              cap: float = math.inf) -> _Run:
    """A client sending evenly at 0.985 x ``rate_at`` (the built-in limiter's window
    margin; at most ``cap``) to a server that accepts ``limit`` requests in any rolling
    second and answers every ``stray_every``-th request 429 regardless."""
    run = _Run(state)
    accepted: deque[float] = deque()
    t, second = start, start
    while t < start + seconds:
        if t >= second:
            run.rates.append(adaptive.rate_at(run.state, t))
            run.sent_in.append(0)
            run.limited_in.append(0)
            second += 1.0
        run.sent += 1
        run.sent_in[-1] += 1
        while accepted and accepted[0] <= t - 1.0:
            accepted.popleft()
        if (stray_every and run.sent % stray_every == 0) \
                or (limit is not None and len(accepted) >= limit):
            epoch = run.state.epoch
            run.state = adaptive.limited(run.state, t)
            run.limited += 1
            run.limited_in[-1] += 1
            run.cuts += run.state.epoch != epoch and run.state.before > 0
        else:
            accepted.append(t)
            run.state = adaptive.succeeded(run.state, t)
        t += 1.0 / min(0.985 * adaptive.rate_at(run.state, t), cap)
    return run


def test_a_tally_counts_what_one_state_per_success_counts() -> None:
    """Successes counted in place and folded per slot give the counts of a new state per
    success, whenever the state is read (mid-slot too)."""
    plain, tally = adaptive.start(500.0), adaptive.Tally(adaptive.start(500.0))
    times = [3.0 + k * 0.0137 for k in range(200)]
    for k, t in enumerate(times):
        plain = adaptive.succeeded(plain, t)
        tally.succeeded(t)
        if k % 37 == 0:
            assert adaptive.accepted(tally.state, t) == adaptive.accepted(plain, t)
    now = times[-1]
    assert adaptive.accepted(tally.state, now) == pytest.approx(adaptive.accepted(plain, now))
    assert adaptive.accepted(plain, now) == pytest.approx(1.0 / 0.0137, rel=0.05)
    tally.state = adaptive.start(100.0)  # a new state drops what was counted in place
    assert adaptive.accepted(tally.state, now) == 0.0
