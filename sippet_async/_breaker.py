"""The breaker: while the server is unreachable, one probe at a time instead of a storm.

```
closed ──no answer──▶ suspect ──the next attempt goes alone──▶ scouting ──its answer──▶ closed
                         ▲                                         │
                         └───────── the scout got no answer ───────┘
suspect, scouting ──THRESHOLD connection failures in a row──▶ open
open ──a probe is due and an attempt goes──▶ probing ──its answer──▶ closed
  ▲                                             │
  └──────────── the probe got no answer ────────┘
```

* **Closed**: every attempt goes out.
* **Suspect / scouting**: an attempt got no answer at all (refused, DNS, connect timeout,
  or reset, disconnected or timed out after sending). Until the server answers, one
  attempt at a time goes out (the scout) and the others wait for its verdict, so a
  server that just died is not hit by every concurrency slot at once (measured with
  benchmarks/bench_outage.py at concurrency 64: 15 to 107 attempts while down in 3 runs
  without this state). An HTTP answer of any status to the scout closes it: only Sippet
  or something in front of it can answer (docs/protocol.md §2, §12.1). A flaky server
  costs the attempts behind the scout one round trip. Answers to requests sent before the
  trouble began prove nothing (a crashed server wrote some just before it died).
* **Open**: THRESHOLD connection failures in a row (refused, DNS, connect timeout: the
  request never left, docs/protocol.md §12.5), with no scout answered in between, show
  the server unreachable. Attempts are not sent: they raise ``ServerUnreachableError`` at
  once, and the call's retry policy decides what comes next. The first attempt made once
  the backoff has passed becomes the probe.
* **Probing**: that one attempt is in flight; every other attempt still fails fast. Any
  HTTP answer to it closes the breaker; none opens it again with a longer backoff.

A scout or probe that is cancelled or never sent gives its turn to the next attempt. Only
the transport's own two classes (``TransportError``, ``TransportTimeoutError``) count:
TLS verification errors and the breaker's own ``ServerUnreachableError`` are subclasses
that say something more precise than "no answer".

Every attempt reports to the same instance, so the machine is one client's view of one
server. The clock is the running loop's (a virtual-clock loop drives it in tests); the
backoff is a function of the probe number built from tenacity's strategies in ``_retry``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
from collections.abc import Callable
from typing import Final

from sippet_async._config import BreakerPolicy
from sippet_async._errors import TransportError, TransportTimeoutError

__all__ = ["Breaker", "BreakerPolicy", "State", "is_unanswered"]

log: Final = logging.getLogger("sippet_async")

Clock = Callable[[], float]
Backoff = Callable[[int], float]  # probe number (from 1) -> seconds until that probe
# (state before, state after, seconds until the next probe may go)
OnChange = Callable[["State", "State", float], None]

# ``wait_ready`` lets one waiter go per probe turn; if it has not probed within this long
# (cancelled, or it chose not to send), the turn passes to the next waiter.
CLAIM_TTL: Final = 1.0


class State(enum.Enum):
    """Where the breaker stands."""

    CLOSED = "closed"
    SUSPECT = "suspect"
    SCOUTING = "scouting"
    OPEN = "open"
    PROBING = "probing"


class Event(enum.Enum):
    """What moves the breaker (the guards are evaluated before the table is consulted)."""

    UNANSWERED = "unanswered"  # an attempt got no answer (below the threshold)
    TRIP = "trip"  # the THRESHOLD-th connection failure in a row
    ANSWER = "answer"  # any HTTP answer to the scout or the probe
    LET_THROUGH = "let_through"  # an attempt goes out as the scout or the probe
    TEST_FAILED = "test_failed"  # the scout or the probe got no answer (below the threshold)
    TEST_DROPPED = "test_dropped"  # the scout or the probe was cancelled or never sent


TRANSITIONS: Final[dict[tuple[State, Event], State]] = {
    (State.CLOSED, Event.UNANSWERED): State.SUSPECT,
    (State.CLOSED, Event.TRIP): State.OPEN,
    (State.SUSPECT, Event.LET_THROUGH): State.SCOUTING,
    (State.SUSPECT, Event.TRIP): State.OPEN,
    (State.SCOUTING, Event.TRIP): State.OPEN,
    (State.SCOUTING, Event.ANSWER): State.CLOSED,
    (State.SCOUTING, Event.TEST_FAILED): State.SUSPECT,
    (State.SCOUTING, Event.TEST_DROPPED): State.SUSPECT,
    (State.OPEN, Event.LET_THROUGH): State.PROBING,
    (State.PROBING, Event.ANSWER): State.CLOSED,
    (State.PROBING, Event.TEST_FAILED): State.OPEN,
    (State.PROBING, Event.TEST_DROPPED): State.OPEN,
}


class Admission(enum.Enum):
    """What ``Breaker.admit`` tells an attempt."""

    GO = "go"  # send it
    TEST = "test"  # send it as the scout or the probe, and report how it ended
    WAIT = "wait"  # a scout is out: wait for a change (``changed()``), then ask again
    REFUSE = "refuse"  # open: fail it fast, unsent


def is_unanswered(exc: BaseException) -> bool:
    """Whether a failed attempt got no answer at all: refused, DNS, connect timeout, or a
    reset, a disconnect or a timeout after sending (the transport's own two classes)."""
    return type(exc) in _TRANSPORT


def is_connection_failure(exc: BaseException) -> bool:
    """Whether a failed attempt never reached the server: refused, DNS, connect timeout."""
    return type(exc) in _TRANSPORT and not exc.sent  # type: ignore[attr-defined]


_TRANSPORT: Final = frozenset({TransportError, TransportTimeoutError})


class Breaker:
    """One client's breaker: the state machine above, what it counts, and a wait for it.

    ``clear`` is the one attribute the success path reads: True while closed, when there
    is nothing to check or report. A disabled breaker (``policy=None``) stays clear.
    """

    def __init__(self, policy: BreakerPolicy | None, backoff: Backoff, *,
                 clock: Clock | None = None, on_change: OnChange | None = None) -> None:
        self.policy = policy
        self.clear = True
        self.state = State.CLOSED
        self.failures = 0  # connection failures in a row since the last answer
        self.probes = 0  # probes that failed since the opening
        self.opened_at = 0.0  # when the server was found unreachable (the outage began)
        self.probe_at = 0.0  # while open: when the next attempt may be the probe
        self.last_failure: BaseException | None = None  # why it is open (for error causes)
        self.turn = 0  # numbers the scouts and probes: a late report of an old one is no test
        self._threshold = policy.threshold if policy is not None else 0
        self._backoff = backoff
        self._clock = clock
        self._on_change = on_change
        self._changed: asyncio.Event | None = None  # made on the first wait
        self._claim = -math.inf  # a waiter went to probe; others wait for it until then

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    # -- what attempts ask and report -----------------------------------------------------

    def admit(self) -> Admission:
        """What an attempt may do now (see ``Admission``); after ``TEST``, ``turn`` names
        the attempt's turn, to pass back when reporting it."""
        state = self.state
        if state is State.CLOSED:
            return Admission.GO
        if state is State.SUSPECT or (state is State.OPEN and self._now() >= self.probe_at):
            self.turn += 1
            self._move(Event.LET_THROUGH)
            return Admission.TEST
        return Admission.WAIT if state is State.SCOUTING else Admission.REFUSE

    def unanswered(self, exc: BaseException, *, turn: int = 0) -> None:
        """An attempt got no answer at all; ``turn``: the one it was let through as (if any)."""
        if not self._threshold:
            return  # disabled
        test = self._testing(turn)
        self.last_failure = exc
        if is_connection_failure(exc):
            self.failures += 1
        state = self.state
        if state in (State.OPEN, State.PROBING):
            if test:  # the probe (an earlier attempt's failure changes nothing)
                self._move(Event.TEST_FAILED)
        elif self.failures >= self._threshold:
            self._move(Event.TRIP)
        elif test:
            self._move(Event.TEST_FAILED)  # the scout: the next attempt scouts
        elif state is State.CLOSED:
            self._move(Event.UNANSWERED)

    def dropped(self, turn: int) -> None:
        """The scout or the probe of ``turn`` was cancelled or never sent: the next
        attempt may go."""
        if self._testing(turn):
            self._move(Event.TEST_DROPPED)

    def _testing(self, turn: int) -> bool:
        """Whether ``turn`` is the scout or the probe out now (else an answer ended it)."""
        return turn == self.turn and self.state in (State.SCOUTING, State.PROBING)

    def answered(self, turn: int = 0) -> None:
        """An attempt got an HTTP answer (any status); ``turn``: the one it was let through
        as, if any. Only the scout's or the probe's answer closes the breaker: a request
        sent before the trouble began may have been answered just before it did."""
        if self._testing(turn):
            self.failures = 0
            self._move(Event.ANSWER)

    # -- the machine --------------------------------------------------------------------

    def _move(self, event: Event) -> None:
        before = self.state
        state = TRANSITIONS[before, event]  # a missing pair is a bug: KeyError
        now = self._now()
        wait = 0.0
        if state is State.OPEN and before is not State.PROBING:  # the outage begins
            self.opened_at = now
            self.probes = 0
            wait = self._backoff(1)
            self.probe_at = now + wait
            log.warning("server unreachable (%d connection failures in a row); sending one "
                        "probe at a time, the first in %.3fs", self.failures, wait)
        elif before is State.PROBING and event is Event.TEST_FAILED:
            self.probes += 1
            wait = self._backoff(self.probes + 1)
            self.probe_at = now + wait
            log.info("server unreachable for %.1fs (probe %d got no answer); next probe in "
                     "%.3fs", now - self.opened_at, self.probes, wait)
        elif state is State.OPEN:  # the probe was dropped: its turn passes on
            wait = max(0.0, self.probe_at - now)
        elif state is State.CLOSED:
            self.last_failure = None
            if before in (State.OPEN, State.PROBING):
                log.warning("server answered again after %.1fs unreachable",
                            now - self.opened_at)
        self.state = state
        self.clear = state is State.CLOSED
        self._claim = -math.inf
        if self._on_change is not None:
            self._on_change(before, state, wait)
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    # -- waiting for it -----------------------------------------------------------------

    async def changed(self) -> None:
        """Return at the next change of state."""
        if self._changed is None:
            self._changed = asyncio.Event()
        await self._changed.wait()

    def unreachable_for(self) -> float:
        """Seconds since the breaker opened; 0.0 unless it is open or probing."""
        if self.state in (State.OPEN, State.PROBING):
            return self._now() - self.opened_at
        return 0.0

    async def wait_ready(self, patience: float) -> bool:
        """Wait until an attempt may go out: at once unless open; while open, until a probe
        is due (one waiter per probe: the others wait for its verdict) or one got an
        answer. False once it has been open ``patience`` seconds: giving up is the
        caller's decision."""
        while self.state in (State.OPEN, State.PROBING):
            now = self._now()
            give_up = self.opened_at + patience
            if now >= give_up:
                return False
            until = give_up
            if self.state is State.OPEN:
                if now < self.probe_at:
                    until = min(until, self.probe_at)
                elif now >= self._claim:  # nobody has gone to probe this turn yet
                    self._claim = now + CLAIM_TTL
                    return True
                else:
                    until = min(until, self._claim)
            try:
                async with asyncio.timeout(None if math.isinf(until) else until - now):
                    await self.changed()
            except TimeoutError:
                pass
        return True
