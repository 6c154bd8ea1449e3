"""Engine options are validated when the client is built, with errors that name the option."""

from __future__ import annotations

import math

import pytest

from sippet_async import BreakerPolicy, RetryPolicy, SippetClient, UsageError

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


def test_the_config_shows_the_whole_request_policy() -> None:
    """client.config holds every policy argument, normalised, frozen, the key masked."""
    policy = RetryPolicy(attempts=2)
    client = SippetClient(KEY, rate_limit=5, retry=policy, idempotent_actions=["end_call"],
                          honours_idempotency_key=True, retry_after_cap=float("inf"),
                          deadline=30, breaker=None)
    config = client.config
    assert (config.rate_limit, config.retry, config.idempotent_actions) == (
        5, policy, frozenset({"end_call"}))
    assert (config.honours_idempotency_key, config.retry_after_cap, config.deadline,
            config.breaker) == (True, math.inf, 30.0, None)
    assert KEY not in repr(config)
    assert "RetryPolicy(attempts=2" in repr(config)
    with pytest.raises(AttributeError):
        config.deadline = 1.0  # type: ignore[misc]


def test_the_default_policy_is_in_the_config() -> None:
    """Without policy arguments the config shows the documented defaults."""
    config = SippetClient(KEY).config
    assert (config.rate_limit, config.retry, config.idempotent_actions) == (
        None, RetryPolicy(), frozenset())
    assert (config.honours_idempotency_key, config.retry_after_cap, config.deadline,
            config.breaker) == (False, 60.0, None, BreakerPolicy())
