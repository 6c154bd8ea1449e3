"""AttemptTimer, the transport's coarse per-attempt timeout: caller cancel x deadline x sweep.

Each case runs one attempt that never gets a reply, on a loop whose clock is virtual
(tests/engine/_virtual.py), following the timer's protocol as ``AiohttpTransport.send``
does: ``arm()``, and on ``CancelledError`` ask ``timed_out()``; ``disarm()`` at the end.
"""

from __future__ import annotations

import asyncio

import pytest

from sippet_async._transport import AttemptTimer

from ._virtual import run_virtual

TOTAL = 1.0  # the attempt's total; the sweep runs every TOTAL / 20


class AttemptTimedOut(TimeoutError):
    """What the attempt raises when the timer, and only the timer, cancelled it."""


class Sweeps(AttemptTimer):
    """An AttemptTimer whose sweeps can also deliver the caller's cancel in their step."""

    victim: asyncio.Task[object] | None = None
    cancel_with_sweep = False

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        super()._sweep(loop)
        victim = self.victim
        if self.cancel_with_sweep and victim is not None and victim.cancelling():
            victim.cancel()  # the caller's cancel, in the very step the timer fired


async def _attempt(timer: AttemptTimer, never: asyncio.Future[None]) -> None:
    armed = timer.arm()
    try:
        await never
    except asyncio.CancelledError:
        if timer.timed_out(armed):
            raise AttemptTimedOut from None
        raise
    finally:
        timer.disarm(armed)


async def _call(timer: AttemptTimer, never: asyncio.Future[None],
                deadline: float | None) -> str:
    if deadline is None:
        await _attempt(timer, never)
        return "answered"
    scope = asyncio.timeout(deadline)
    try:
        async with scope:
            await _attempt(timer, never)
    except TimeoutError:
        if scope.expired():
            return "deadline"
        raise
    return "answered"


def _outcome(caller: str, deadline: float | None) -> tuple[str, int, float, int]:
    async def main() -> tuple[str, int, float, int]:
        loop = asyncio.get_running_loop()
        timer = Sweeps(TOTAL)
        never: asyncio.Future[None] = loop.create_future()
        started = loop.time()
        task = asyncio.create_task(_call(timer, never, deadline))
        timer.victim = task
        timer.cancel_with_sweep = caller == "with the sweep"
        if caller == "before the total":
            loop.call_later(TOTAL / 2, task.cancel)
        try:
            outcome = await task
        except AttemptTimedOut:
            outcome = "attempt timed out"
        except asyncio.CancelledError:
            outcome = "cancelled"
        current = asyncio.current_task()
        assert current is not None
        return outcome, task.cancelling(), loop.time() - started, current.cancelling()

    result: tuple[str, int, float, int] = run_virtual(main)
    return result


# caller cancel x deadline (None, shorter than the total, longer) -> how the call ends
MATRIX = [
    ("none", None, "attempt timed out"),
    ("none", TOTAL / 2, "deadline"),
    ("none", TOTAL * 5, "attempt timed out"),
    ("before the total", None, "cancelled"),
    ("before the total", TOTAL / 4, "deadline"),  # the deadline comes first
    ("before the total", TOTAL * 5, "cancelled"),
    ("with the sweep", None, "cancelled"),
    ("with the sweep", TOTAL / 2, "deadline"),  # the sweep never fires: the deadline did
    ("with the sweep", TOTAL * 5, "cancelled"),
]


@pytest.mark.parametrize(("caller", "deadline", "expected"), MATRIX,
                         ids=[f"{c}-{d}" for c, d, _ in MATRIX])
def test_cancel_matrix(caller: str, deadline: float | None, expected: str) -> None:
    """A caller's cancel always stays a cancel (even in the sweep's own step), the earlier
    of deadline and total ends the call, and no cancel request is left behind."""
    outcome, victim_cancelling, took, cancelling = _outcome(caller, deadline)
    assert outcome == expected
    assert cancelling == 0
    if outcome != "cancelled":
        assert victim_cancelling == 0  # the timer and the scope took theirs back
    if outcome == "attempt timed out":
        assert TOTAL <= took <= TOTAL * 1.05 + 1e-3  # up to one sweep (5%) late


def test_the_sweeper_stops_when_nothing_is_armed() -> None:
    """No attempt in flight, no timer handle: an idle client schedules nothing."""
    async def main() -> bool:
        timer = AttemptTimer(TOTAL)
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with pytest.raises(AttemptTimedOut):
            await _attempt(timer, never)
        await asyncio.sleep(TOTAL)  # virtual: one more tick passes with nothing armed
        return timer._sweeper is None

    assert run_virtual(main)
