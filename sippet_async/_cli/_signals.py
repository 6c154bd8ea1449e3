"""Ctrl-C (and SIGTERM) for the long commands: the first stops gracefully, the second at once.

``sippet import`` and ``sippet export`` stop taking work on the first signal, finish what is
in flight, print their summary and how to resume, and exit ``128 + signal`` (130 after
Ctrl-C). ``sippet worker`` has the same from ``CallWorker`` itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Final

__all__ = ["STOP_SIGNALS", "Interrupts", "exit_code"]

STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


def exit_code(signum: signal.Signals) -> int:
    """The shell's code for a process stopped by ``signum``: 130 for Ctrl-C."""
    return 128 + int(signum)


class Interrupts:
    """While entered, the first of ``signals`` calls ``stop`` (and is kept in ``signum``);
    the next calls ``now``, or without one, takes the signal's default action (Ctrl-C:
    ``KeyboardInterrupt``)."""

    def __init__(self, signals: Sequence[signal.Signals], stop: Callable[[], None],
                 now: Callable[[], None] | None = None) -> None:
        self._signals = tuple(signals)
        self._stop = stop
        self._now = now
        self._installed: list[signal.Signals] = []
        self.signum: signal.Signals | None = None

    def __enter__(self) -> Interrupts:
        loop = asyncio.get_running_loop()
        for signum in self._signals:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                # Not on Windows' default loop, nor outside the main thread.
                loop.add_signal_handler(signum, self._on_signal, signum)
                self._installed.append(signum)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._remove()

    def _remove(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in self._installed:
            loop.remove_signal_handler(signum)
        self._installed.clear()

    def _on_signal(self, signum: signal.Signals) -> None:
        if self.signum is not None:
            if self._now is not None:
                self._now()
            return
        self.signum = signum
        if self._now is None:
            self._remove()  # the next one acts as if we were not here
        self._stop()
