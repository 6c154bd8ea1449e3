"""An event loop whose clock is virtual: time moves only when every task is waiting.

When the loop would block until its next timer, the selector jumps the clock to that
timer instead (plus a modelled lateness), so seconds of limiter behaviour run in
milliseconds and every timestamp is exact. Only for code that does no real I/O.
"""

from __future__ import annotations

import asyncio
import math
import random
import selectors
from collections.abc import Callable, Mapping
from typing import Any, Final

_MIN_STEP: Final = 1e-6  # seconds a loop turn takes, at least


def epoll_lateness(seed: int = 0) -> Callable[[float], float]:
    """How late a real timer fires: epoll rounds the wait up to a millisecond, plus up to
    0.5 ms of scheduling noise."""
    rng = random.Random(seed)

    def late(timeout: float) -> float:
        return math.ceil(timeout * 1e3) * 1e-3 - timeout + rng.uniform(0.0, 0.0005)

    return late


class _JumpingSelector(selectors.BaseSelector):
    """Delegates to a real selector, but never blocks: an idle wait advances the clock."""

    def __init__(self, lateness: Callable[[float], float] | None) -> None:
        self._real = selectors.DefaultSelector()
        self._lateness = lateness
        self.now = 0.0

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        # A real clock moves on during every loop turn; without that, a timer re-armed for
        # a float residue (1e-17 s ahead, as aiolimiter's can be) would spin forever.
        self.now += _MIN_STEP
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise RuntimeError("virtual loop: every task waits and no timer is set (deadlock)")
        self.now += timeout + (self._lateness(timeout) if self._lateness else 0.0)
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """A selector loop whose ``time()`` is the virtual clock of its selector."""

    def __init__(self, lateness: Callable[[float], float] | None = None) -> None:
        self._jumping = _JumpingSelector(lateness)
        super().__init__(self._jumping)

    def time(self) -> float:
        return self._jumping.now


def run_virtual(main: Callable[[], Any], lateness: Callable[[float], float] | None = None
                ) -> Any:
    """Run the coroutine function ``main`` on a fresh virtual-clock loop."""
    # debug=False even under PYTHONDEVMODE: debug mode records a stack per callback, which
    # makes tens of thousands of limiter wake-ups crawl, and checks nothing this needs.
    with asyncio.Runner(debug=False, loop_factory=lambda: VirtualClockLoop(lateness)) as runner:
        return runner.run(main())

