"""The breaker as a pure state machine: a table of transitions, one test at a time, a
growing capped backoff, closed by any answer. Its clock is a number the tests move; its
wait runs on the virtual-clock loop."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from sippet_async import BreakerPolicy, TransportError, TransportTimeoutError, UsageError
from sippet_async._breaker import TRANSITIONS, Admission, Breaker, Event, State
from sippet_async._errors import ServerUnreachableError
from sippet_async._retry import probe_backoff

from ._virtual import run_virtual

REFUSED = TransportError("connection failed", sent=False)
CONNECT_TIMEOUT = TransportTimeoutError("connect timed out", sent=False)
RESET = TransportError("server disconnected", sent=True)


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: float = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Changes:
    """Every state change the breaker reports: (before, after, wait)."""

    seen: list[tuple[State, State, float]] = field(default_factory=list)

    def __call__(self, before: State, after: State, wait: float) -> None:
        self.seen.append((before, after, wait))


def doubling(probe: int) -> float:
    """A deterministic backoff for the table: 1, 2, 4, ... capped at 30."""
    return min(30.0, 2.0 ** (probe - 1))


def breaker(threshold: int = 3, backoff: Callable[[int], float] = doubling
            ) -> tuple[Breaker, Clock, Changes]:
    clock, changes = Clock(), Changes()
    policy = BreakerPolicy(threshold=threshold)
    return Breaker(policy, backoff, clock=clock, on_change=changes), clock, changes


def opened(threshold: int = 3) -> tuple[Breaker, Clock, Changes]:
    """A breaker that ``threshold`` refusals have just opened."""
    b, clock, changes = breaker(threshold)
    for _ in range(threshold):
        b.unanswered(REFUSED)
    assert b.state is State.OPEN
    return b, clock, changes


# -- the table: from each state, each event leads where the table says ----------------------

def _closed() -> Breaker:
    return breaker()[0]


def _suspect() -> Breaker:
    b = _closed()
    b.unanswered(RESET)
    return b


def _scouting() -> Breaker:
    b = _suspect()
    assert b.admit() is Admission.TEST
    return b


def _open() -> Breaker:
    return opened()[0]


def _probing() -> Breaker:
    b, clock, _ = opened()
    clock.now = b.probe_at
    assert b.admit() is Admission.TEST
    return b


START = {State.CLOSED: _closed, State.SUSPECT: _suspect, State.SCOUTING: _scouting,
         State.OPEN: _open, State.PROBING: _probing}


def _fire(b: Breaker, event: Event) -> None:
    """Cause ``event`` the way an attempt would."""
    if event is Event.UNANSWERED:
        b.unanswered(RESET)
    elif event is Event.TRIP:
        b.failures = b._threshold - 1  # the last refusal of a run of them
        b.unanswered(REFUSED)
    elif event is Event.ANSWER:
        b.answered(b.turn)  # the scout's or the probe's answer
    elif event is Event.LET_THROUGH:
        b._clock.now = b.probe_at  # type: ignore[attr-defined]
        assert b.admit() is Admission.TEST
    elif event is Event.TEST_FAILED:
        b.unanswered(RESET, turn=b.turn)
    elif event is Event.TEST_DROPPED:
        b.dropped(b.turn)


@pytest.mark.parametrize(("state", "event"), sorted(TRANSITIONS, key=str))
def test_every_transition_of_the_table(state: State, event: Event) -> None:
    """Each (state, event) pair of the table leads to the state the table names."""
    b = START[state]()
    assert b.state is state
    _fire(b, event)
    assert b.state is TRANSITIONS[state, event]
    assert b.clear is (b.state is State.CLOSED)


ADMISSIONS = [
    (State.CLOSED, Admission.GO),
    (State.SUSPECT, Admission.TEST),  # the next attempt scouts...
    (State.SCOUTING, Admission.WAIT),  # ...and the others wait for its verdict
    (State.OPEN, Admission.REFUSE),  # before the probe is due
    (State.PROBING, Admission.REFUSE),
]


@pytest.mark.parametrize(("state", "admission"), ADMISSIONS)
def test_what_an_attempt_may_do_in_each_state(state: State, admission: Admission) -> None:
    """Closed lets all through; suspect one scout; open and probing fail the rest fast."""
    assert START[state]().admit() is admission


# -- the rules, one by one ------------------------------------------------------------------

def test_opens_after_threshold_connection_failures_in_a_row() -> None:
    """Refusals and connect timeouts count; the THRESHOLD-th opens it, not one sooner."""
    b, clock, changes = breaker(threshold=3)
    b.unanswered(REFUSED)
    b.unanswered(CONNECT_TIMEOUT)
    assert b.state is State.SUSPECT
    b.unanswered(REFUSED)
    assert b.state is State.OPEN
    assert b.opened_at == clock.now
    assert b.probe_at == clock.now + doubling(1)
    assert changes.seen[-1] == (State.SUSPECT, State.OPEN, doubling(1))


def test_the_scouts_answer_starts_the_count_again() -> None:
    """Two refusals, the scout answered (any status), two refusals: still not open."""
    b, _, _ = breaker(threshold=3)
    for _ in range(2):
        b.unanswered(REFUSED)
    assert b.admit() is Admission.TEST
    b.answered(b.turn)
    assert b.state is State.CLOSED
    for _ in range(2):
        b.unanswered(REFUSED)
    assert b.state is State.SUSPECT


@pytest.mark.parametrize("start", [State.SUSPECT, State.SCOUTING, State.OPEN, State.PROBING])
def test_an_answer_to_a_request_sent_before_the_trouble_proves_nothing(start: State) -> None:
    """A crashed server wrote some replies just before it died: they close nothing."""
    b = START[start]()
    b.answered(0)  # not let through as a scout or probe: sent while it was closed
    assert b.state is start


def test_resets_make_it_suspect_but_never_open_it() -> None:
    """A server that resets every request but accepts connections: scouted, never open."""
    b, _, _ = breaker(threshold=3)
    for _ in range(50):
        b.unanswered(RESET)
    assert b.state is State.SUSPECT
    assert b.failures == 0


@pytest.mark.parametrize("exc", [ServerUnreachableError("not sent"),
                                 type("TLSVerificationError", (TransportError,), {})("bad CA",
                                                                                    sent=False)])
def test_subclasses_of_transport_error_never_count(exc: TransportError) -> None:
    """The breaker's own error and a more precise subclass (e.g. TLS) are no outage sign."""
    b, _, _ = breaker(threshold=1)
    b.unanswered(exc)
    assert b.state is State.SUSPECT  # not an answer either: the next attempt scouts
    assert b.failures == 0


def test_one_probe_at_a_time_then_growing_capped_backoff() -> None:
    """Open: refused until due, then exactly one probe; each failed probe waits longer,
    up to the cap."""
    b, clock, _ = opened()
    waits = []
    for _ in range(8):
        assert b.admit() is Admission.REFUSE  # before it is due
        clock.now = b.probe_at
        assert b.admit() is Admission.TEST
        turn = b.turn
        assert b.admit() is Admission.REFUSE  # the probe is out: nobody else
        start = clock.now
        b.unanswered(REFUSED, turn=turn)
        assert b.state is State.OPEN
        waits.append(b.probe_at - start)
    assert waits == [doubling(n) for n in range(2, 10)]
    assert waits[-1] == 30.0  # capped


@pytest.mark.parametrize("start", [State.SCOUTING, State.PROBING])
def test_the_tests_answer_closes_it(start: State) -> None:
    """An HTTP answer of any status to the scout or the probe closes it."""
    b = START[start]()
    b.answered(b.turn)
    assert b.state is State.CLOSED
    assert b.clear
    assert b.admit() is Admission.GO


def test_a_late_report_of_an_old_turn_is_not_the_test() -> None:
    """A scout whose turn ended (someone answered) does not fail the next scout's turn."""
    b = _scouting()
    old = b.turn
    b.answered(old)
    b.unanswered(RESET)  # another attempt: suspect again
    assert b.admit() is Admission.TEST
    b.unanswered(RESET, turn=old)  # the old scout fails late
    assert b.state is State.SCOUTING  # the new scout is still out
    assert b.admit() is Admission.WAIT


def test_a_dropped_probe_lets_the_next_attempt_probe_at_once() -> None:
    """Cancelled or never sent: no verdict, the next attempt is the probe."""
    b = _probing()
    b.dropped(b.turn)
    assert b.state is State.OPEN
    assert b.admit() is Admission.TEST


def test_disabled_breaker_stays_closed() -> None:
    """policy=None: nothing counts, every attempt goes."""
    b = Breaker(None, doubling, clock=Clock())
    for _ in range(10):
        b.unanswered(REFUSED)
    assert (b.state, b.clear, b.admit()) == (State.CLOSED, True, Admission.GO)


# -- the backoff: tenacity's strategies -----------------------------------------------------

def test_probe_backoff_grows_by_the_factor_up_to_the_cap() -> None:
    """Without jitter the schedule is exact: first * growth**(n-1), capped."""
    backoff = probe_backoff(0.1, 1.25, 30.0, 0.0)
    assert [backoff(n) for n in (1, 2, 3)] == pytest.approx([0.1, 0.125, 0.15625])
    assert backoff(100) == 30.0


def test_probe_backoff_jitter_stays_within_its_share() -> None:
    """With jitter j, each wait lies in [(1 - j) ceiling, ceiling]: growing on average,
    never sooner than the fixed part, never above the cap."""
    backoff = probe_backoff(0.1, 1.25, 30.0, 0.5)
    for n in (1, 5, 10, 40):
        ceiling = min(30.0, 0.1 * 1.25 ** (n - 1))
        draws = [backoff(n) for _ in range(200)]
        assert all(0.5 * ceiling - 1e-9 <= d <= ceiling + 1e-9 for d in draws)
        assert max(draws) - min(draws) > 0.2 * ceiling  # it is random


@pytest.mark.parametrize("bad", [
    {"threshold": 0}, {"threshold": True}, {"probe_wait": 0}, {"growth": 0.9},
    {"max_probe_wait": math.inf}, {"probe_wait": 5.0, "max_probe_wait": 1.0},
    {"jitter": 1.5},
])
def test_policy_rejects_bad_values(bad: dict[str, float]) -> None:
    """A bad BreakerPolicy is a UsageError naming the field."""
    with pytest.raises(UsageError, match=next(iter(bad))):
        BreakerPolicy(**bad)  # type: ignore[arg-type]


# -- the wait, on the virtual clock ---------------------------------------------------------

def test_wait_ready_returns_when_the_probe_is_due() -> None:
    """While open, a waiter returns exactly when the next probe may go."""
    async def main() -> tuple[float, float]:
        b = Breaker(BreakerPolicy(threshold=1), doubling)
        b.unanswered(REFUSED)
        assert await b.wait_ready(patience=60.0)
        return asyncio.get_running_loop().time(), b.probe_at

    returned, due = run_virtual(main)
    assert returned >= due
    assert returned - due < 0.01


def test_wait_ready_gives_up_after_patience_counted_from_the_opening() -> None:
    """Probes keep failing: the wait ends with False at opened_at + patience."""
    async def main() -> tuple[bool, float, float]:
        b = Breaker(BreakerPolicy(threshold=1), doubling)
        b.unanswered(REFUSED)
        while await b.wait_ready(patience=20.0):
            assert b.admit() is Admission.TEST
            b.unanswered(REFUSED, turn=b.turn)
        return b.state is State.OPEN, asyncio.get_running_loop().time(), b.opened_at

    still_open, gave_up, opened_at = run_virtual(main)
    assert still_open
    assert 20.0 <= gave_up - opened_at < 20.01


def test_wait_ready_returns_as_soon_as_the_probe_gets_an_answer() -> None:
    """A waiter behind the probe returns when it answers, not at the next probe time."""
    async def main() -> tuple[bool, float, float]:
        b = Breaker(BreakerPolicy(threshold=1), doubling)
        b.unanswered(REFUSED)
        loop = asyncio.get_running_loop()
        await asyncio.sleep(b.probe_at - loop.time())
        assert b.admit() is Admission.TEST
        loop.call_later(0.25, b.answered, b.turn)  # the probe's answer comes back
        ready = await b.wait_ready(patience=60.0)
        return ready, loop.time(), b.probe_at

    ready, returned, probe_at = run_virtual(main)
    assert ready
    assert 0.25 <= returned - probe_at < 0.26
