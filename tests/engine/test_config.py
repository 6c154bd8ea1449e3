"""Engine options are validated when the client is built, with errors that name the option."""

from __future__ import annotations

import pytest

from sippet_async import RetryPolicy, SippetClient, UsageError

from ._support import KEY


@pytest.mark.parametrize(("option", "value"), [
    ("rate_limit", 0), ("rate_limit", -5), ("rate_limit", float("nan")),
    ("rate_limit", float("inf")), ("rate_limit", True), ("rate_limit", "10"),
    ("retry", 3), ("retry", None),
    ("idempotent_actions", "create_call"), ("idempotent_actions", [1]),
    ("retry_after_cap", 0), ("retry_after_cap", -1.0), ("retry_after_cap", None),
    ("deadline", 0),
])
def test_bad_engine_options_raise_usage_errors(option: str, value: object) -> None:
    """Each bad option raises UsageError naming it, before anything is opened."""
    with pytest.raises(UsageError, match=option):
        SippetClient(KEY, **{option: value})  # type: ignore[arg-type]


def test_good_engine_options_are_accepted() -> None:
    """Fractional rates, an infinite cap and a policy object are fine."""
    client = SippetClient(KEY, rate_limit=0.5, retry=RetryPolicy(attempts=2),
                          idempotent_actions={"end_call"}, retry_after_cap=float("inf"),
                          deadline=30)
    assert client.counters.requests == 0


async def test_bad_idempotent_flag_is_a_usage_error() -> None:
    """idempotent must be True, False or None."""
    async with SippetClient(KEY, base_url="http://127.0.0.1:9") as client:
        with pytest.raises(UsageError, match="idempotent"):
            await client.run("create_call", input={}, idempotent="yes")  # type: ignore[arg-type]
