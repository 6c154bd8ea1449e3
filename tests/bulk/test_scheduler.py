"""The generic scheduler (``_jobs._scheduler``) on its own: no server, no Sippet, plain ints."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable

import pytest

from sippet_async._jobs._scheduler import Finished, Scheduler
from sippet_async._jobs._state import JobState


class Doubler:
    """A handler: outputs 2*item; items in ``set_aside`` are set aside once; items in
    ``skip`` need no processing; item 0 waits at ``gate`` until it is opened."""

    def __init__(self, set_aside: frozenset[int] = frozenset(),
                 skip: frozenset[int] = frozenset()) -> None:
        self.set_aside = set(set_aside)
        self.skip = skip
        self.gate = asyncio.Event()
        self.gate.set()
        self.window: int | None = None  # ordered: assert each pull fits the window
        self.yielded = 0  # outputs the caller took (the test counts them)
        self.admitted: list[int] = []
        self.states: dict[int, JobState] = {}  # job state when an item was processed last
        self.released: list[int] = []
        self.scheduler: Scheduler[int, int, int] | None = None

    def admit(self, index: int, item: int) -> int | Finished[int]:
        if self.window is not None:
            assert index < self.yielded + self.window, "pulled past the reorder window"
            if index == self.window - 1:
                self.gate.set()  # the window is full while item 0 waits: let it go
        self.admitted.append(index)
        return Finished(-item) if item in self.skip else item

    async def process(self, work: int) -> int | None:
        if work == 0:
            await self.gate.wait()
        assert self.scheduler is not None
        self.states[work] = self.scheduler.state
        if work in self.set_aside:
            self.set_aside.discard(work)
            return None
        await asyncio.sleep(0)  # a turn of the loop, as any I/O would take
        return 2 * work

    def release(self, work: int) -> int:
        self.released.append(work)
        return -1

    def cut_off(self, work: int) -> int | None:
        return None


def _scheduler(handler: Doubler, items: Iterable[int] | AsyncIterable[int], *,
               concurrency: int = 4, ordered: bool = False) -> Scheduler[int, int, int]:
    scheduler: Scheduler[int, int, int] = Scheduler(
        items, handler, concurrency=concurrency, ordered=ordered, window=8, name="test")
    handler.scheduler = scheduler
    return scheduler


async def _run(scheduler: Scheduler[int, int, int]) -> list[int]:
    scheduler.start()
    try:
        return [output async for output in scheduler]
    finally:
        await scheduler.aclose()


async def test_ordered_output_holds_at_most_the_window() -> None:
    """Ordered: outputs come in input order, and no item is pulled past the window."""
    handler = Doubler()
    handler.gate.clear()
    handler.window = 8
    scheduler = _scheduler(handler, range(100), ordered=True)
    scheduler.start()
    outputs = []
    try:
        async for output in scheduler:
            outputs.append(output)
            handler.yielded += 1
    finally:
        await scheduler.aclose()
    assert outputs == [2 * i for i in range(100)]
    assert scheduler.state is JobState.CLOSED


async def test_items_set_aside_run_again_once_the_input_is_done() -> None:
    """An item set aside is processed again in REDRIVING, after everything else."""
    handler = Doubler(set_aside=frozenset({3, 7}))
    outputs = await _run(_scheduler(handler, range(20)))
    assert sorted(outputs) == [2 * i for i in range(20)]
    assert outputs[-2:] in ([6, 14], [14, 6])
    assert handler.states[3] is handler.states[7] is JobState.REDRIVING


async def test_a_stop_releases_what_was_set_aside() -> None:
    """After stop() an item set aside is not run again: the handler settles it as it stands."""
    handler = Doubler(set_aside=frozenset({1}))
    scheduler = _scheduler(handler, range(50), concurrency=2)
    scheduler.start()
    outputs = []
    try:
        async for output in scheduler:
            outputs.append(output)
            if len(outputs) == 3:
                scheduler.stop()
    finally:
        await scheduler.aclose()
    assert handler.released == [1]
    assert -1 in outputs
    assert len(outputs) == len(handler.admitted) < 50


async def test_finished_items_skip_processing_and_async_input_works() -> None:
    """An async input is read lazily; an item admit() finishes is output without processing."""

    async def numbers() -> AsyncIterator[int]:
        for i in range(10):
            yield i

    handler = Doubler(skip=frozenset({4}))
    outputs = await _run(_scheduler(handler, numbers(), ordered=True))
    assert outputs == [0, 2, 4, 6, -4, 10, 12, 14, 16, 18]
    assert 4 not in handler.states


async def test_an_error_in_the_handler_ends_the_iteration_with_it() -> None:
    """A crash in admit() is raised to the caller, and no worker is left running."""

    class Broken(Doubler):
        def admit(self, index: int, item: int) -> int | Finished[int]:
            if index == 5:
                raise RuntimeError("bad item")
            return super().admit(index, item)

    scheduler = _scheduler(Broken(), range(20))
    with pytest.raises(RuntimeError, match="bad item"):
        await _run(scheduler)
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("test-worker")]
