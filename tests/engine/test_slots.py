"""The concurrency cap (``Slots``): a hard cap, first come first served, and no slot lost to
a cancelled waiter."""

from __future__ import annotations

import asyncio

import pytest

from sippet_async._limits import Slots


async def _queue(slots: Slots, name: str, order: list[str]) -> asyncio.Task[None]:
    """A task waiting in line for a slot, already queued when this returns."""
    entered = asyncio.Event()

    async def waiter() -> None:
        entered.set()  # wait() queues in this same step, before the caller resumes
        await slots.wait()
        order.append(name)

    task = asyncio.create_task(waiter())
    await entered.wait()
    return task


async def test_take_stops_at_the_cap() -> None:
    """``take()`` succeeds n times, then refuses until a slot comes back."""
    slots = Slots(2)
    assert [slots.take(), slots.take(), slots.take()] == [True, True, False]
    slots.release()
    assert slots.take()
    assert slots.free == 0


async def test_waiters_are_served_in_arrival_order() -> None:
    """Released slots go to the waiters in the order they queued."""
    slots = Slots(1)
    assert slots.take()
    order: list[str] = []
    tasks = [await _queue(slots, name, order) for name in "abc"]
    for _ in tasks:
        slots.release()
    await asyncio.gather(*tasks)
    assert order == ["a", "b", "c"]
    assert slots.free == 0  # each slot went to a waiter, none back to the pool


async def test_a_newcomer_does_not_jump_the_line() -> None:
    """A slot released while someone waits is handed to them, not taken by ``take()``."""
    slots = Slots(1)
    assert slots.take()
    order: list[str] = []
    first = await _queue(slots, "first", order)
    slots.release()
    assert not slots.take()
    await first
    assert order == ["first"]
    slots.release()
    assert slots.take()


async def test_a_waiter_cancelled_in_line_leaves_it() -> None:
    """A cancelled waiter gives up its place; the next one gets the slot."""
    slots = Slots(1)
    assert slots.take()
    order: list[str] = []
    gone = await _queue(slots, "gone", order)
    kept = await _queue(slots, "kept", order)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    slots.release()
    await kept
    assert order == ["kept"]
    slots.release()
    assert slots.free == 1


async def test_a_slot_handed_to_a_waiter_cancelled_before_it_ran_is_passed_on() -> None:
    """Handed a slot and cancelled before resuming: the slot goes to the next in line."""
    slots = Slots(1)
    assert slots.take()
    order: list[str] = []
    handed = await _queue(slots, "handed", order)
    kept = await _queue(slots, "kept", order)
    slots.release()  # resolves handed's turn; it has not run yet
    handed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await handed
    await asyncio.wait_for(kept, timeout=5)  # without the hand-on, this slot was lost
    assert order == ["kept"]
    slots.release()
    assert slots.free == 1
