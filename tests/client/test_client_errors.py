"""Every error class of sippet_async, provoked over real HTTP (the table is in conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

from sippet_async import SippetError, _errors

# Classes no scenario raises, with the reason; anything else must be provoked.
NOT_PROVOKED = {SippetError: "the abstract base"}


async def test_error_scenario(error_scenario: Any, ctx: Any) -> None:
    """Each failure raises exactly its sippet_async class, with the documented attributes.

    Never an aiohttp, asyncio or msgspec exception (those may only appear as __cause__),
    and usage errors are raised before any request reaches the server.
    """
    with pytest.raises(Exception) as info:  # noqa: PT011 - the class is asserted below
        await error_scenario.act(ctx)
    exc = info.value
    assert type(exc).__module__.startswith("sippet_async"), repr(exc)
    assert type(exc) is error_scenario.expected, repr(exc)
    assert str(exc), "every error explains itself"
    error_scenario.check(exc, ctx)
    if error_scenario.before_io:
        assert ctx.server.requests == []


def test_every_error_class_is_provoked(error_scenarios: tuple[Any, ...]) -> None:
    """The scenario table covers every exception class of _errors.py (bar NOT_PROVOKED)."""
    classes = {getattr(_errors, name) for name in _errors.__all__}
    classes = {c for c in classes if isinstance(c, type) and issubclass(c, BaseException)}
    provoked = {scenario.expected for scenario in error_scenarios}
    assert classes - provoked == set(NOT_PROVOKED)


def test_usage_error_is_a_value_error() -> None:
    """UsageError is also a ValueError, as STYLE.md promises."""
    assert issubclass(_errors.UsageError, ValueError)
    assert issubclass(_errors.TransportTimeoutError, TimeoutError)
