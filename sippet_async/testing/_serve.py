"""Run a fake server as a long-lived process (``sippet fake-server``)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from ._faults import Faults
from ._server import DEFAULT_API_KEY, FakeSippet


async def run_forever(
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str = DEFAULT_API_KEY,
    seed_contacts: int = 0,
    *,
    handle_signals: bool = False,
    on_ready: Callable[[FakeSippet], object] | None = None,
    max_page_size: int = 500,
    latency: float = 0.0,
    honour_idempotency_key: bool = False,
    faults: Faults | None = None,
    seed: int = 0,
) -> None:
    """Serve until cancelled, or until SIGINT/SIGTERM when ``handle_signals``; prints nothing.

    ``on_ready(server)`` is called once listening (e.g. to print ``server.url``). On a signal
    it stops and returns; on cancellation it stops cleanly and re-raises ``CancelledError``.

    Example:
        >>> asyncio.run(run_forever(port=8787, handle_signals=True, on_ready=print_url))
    """
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    async with FakeSippet(
        api_key,
        host=host,
        port=port,
        seed_contacts=seed_contacts,
        max_page_size=max_page_size,
        latency=latency,
        honour_idempotency_key=honour_idempotency_key,
        faults=faults,
        seed=seed,
    ) as server:
        try:
            if handle_signals:
                for signum in (signal.SIGINT, signal.SIGTERM):
                    try:
                        loop.add_signal_handler(signum, stopped.set)
                    except (NotImplementedError, RuntimeError):  # Windows, or not main thread
                        continue
                    installed.append(signum)
            if on_ready is not None:
                on_ready(server)
            await stopped.wait()
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str = DEFAULT_API_KEY,
    seed_contacts: int = 0,
    *,
    on_ready: Callable[[FakeSippet], object] | None = None,
) -> Coroutine[Any, Any, None]:
    """:func:`run_forever` with SIGINT/SIGTERM handling, for the CLI."""
    return run_forever(host, port, api_key, seed_contacts, handle_signals=True, on_ready=on_ready)
