"""The adaptive rules, pure: time is a number passed in, nothing waits (issue 12)."""

from __future__ import annotations

import math

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


def test_a_pause_lowers_the_count_not_the_learned_quota() -> None:
    """800/s with a 0.2 s Retry-After pause in the last second: the quota learned is ~800/s
    (the successes over the time the client was allowed to send), not the 640 counted."""
    state = _steady(adaptive.start(1000.0), 800.0, 0.0, 1.0)
    state = adaptive.limited(state, 1.0, retry_after=0.2)  # a stray: a pause, no cut
    assert adaptive.rate_at(state, 1.0) == 1000.0
    state = _steady(state, 800.0, 1.2, 0.8)
    plain = _steady(adaptive.start(1000.0), 800.0, 0.0, 1.0)
    plain = _steady(plain, 800.0, 1.2, 0.8)
    for _ in range(5):  # a cluster: a quota met
        state = adaptive.limited(state, 2.0, retry_after=0.001)
        plain = adaptive.limited(plain, 2.0)
    assert adaptive.rate_at(plain, 2.0) == pytest.approx(640.0, rel=0.03)
    assert adaptive.rate_at(state, 2.0) == pytest.approx(800.0, rel=0.03)
