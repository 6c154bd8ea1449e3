"""RetryPolicy, the retry budget and the retry predicate, as pure functions (no I/O)."""

from __future__ import annotations

import random

import pytest

from sippet_async import (
    AuthenticationError,
    InvalidInputError,
    ProtocolError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    SippetError,
    TransportError,
    TransportTimeoutError,
    UsageError,
)
from sippet_async._retry import RetryBudget, cause_of, not_executed


@pytest.mark.parametrize(("field", "value"), [
    ("attempts", 0), ("attempts", 1.5), ("attempts", True), ("initial_wait", -1.0),
    ("max_wait", float("nan")), ("max_wait", float("inf")), ("jitter", 1.5),
    ("jitter", -0.1), ("budget", -1), ("budget_refill", "1"), ("sleep", 3),
])
def test_bad_policy_values_raise_usage_errors_naming_the_field(field: str, value: object) -> None:
    """Each bad RetryPolicy field raises UsageError (a ValueError) that names it."""
    with pytest.raises(UsageError, match=field):
        RetryPolicy(**{field: value})  # type: ignore[arg-type]


def test_max_wait_below_initial_wait_is_rejected() -> None:
    """max_wait < initial_wait is a usage error."""
    with pytest.raises(UsageError, match="max_wait"):
        RetryPolicy(initial_wait=5.0, max_wait=1.0)


def test_policy_is_frozen_and_compares_by_value() -> None:
    """A policy is immutable and equal to another with the same numbers."""
    policy = RetryPolicy(attempts=3)
    assert policy == RetryPolicy(attempts=3)
    with pytest.raises(AttributeError):
        policy.attempts = 5  # type: ignore[misc]


def test_backoff_without_jitter_doubles_up_to_max_wait() -> None:
    """jitter=0: 0.5, 1, 2, 4, then capped at max_wait."""
    policy = RetryPolicy(initial_wait=0.5, max_wait=3.0, jitter=0.0)
    assert [policy.backoff(n, 0.9) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_full_jitter_spreads_uniformly_below_the_ceiling() -> None:
    """jitter=1 ("full jitter"): waits lie in [0, ceiling] and average about half of it."""
    policy = RetryPolicy(initial_wait=1.0, max_wait=8.0, jitter=1.0)
    rng = random.Random(3)
    waits = [policy.backoff(3, rng.random()) for _ in range(2000)]
    assert all(0.0 <= w <= 4.0 for w in waits)
    assert 1.8 < sum(waits) / len(waits) < 2.2


def test_huge_retry_numbers_do_not_overflow() -> None:
    """The exponent is clamped: retry 10,000 still waits at most max_wait."""
    assert RetryPolicy(jitter=0.0).backoff(10_000, 0.0) == RetryPolicy().max_wait


def test_budget_spends_one_token_per_retry_and_refills_per_success() -> None:
    """Three tokens allow three retries; two successes at 0.5 buy one more."""
    budget = RetryBudget(3.0, 0.5)
    assert [budget.withdraw() for _ in range(4)] == [True, True, True, False]
    budget.refill()
    assert not budget.withdraw()
    budget.refill()
    assert budget.withdraw()


def test_budget_never_exceeds_its_capacity() -> None:
    """Refills stop at the capacity."""
    budget = RetryBudget(2.0, 0.5)
    for _ in range(10):
        budget.refill()
    assert budget.tokens == 2.0


# What each failure means for a retry (the table of docs/guides/retries.md):
# (error, cause label or None when never retried, provably not executed)
PREDICATE_TABLE: list[tuple[str, SippetError, str | None, bool]] = [
    ("refused", TransportError("refused", sent=False), "connect", True),
    ("connect timeout", TransportTimeoutError("connect", sent=False), "connect", True),
    ("reset after send", TransportError("reset", sent=True), "transport", False),
    ("read timeout", TransportTimeoutError("read", sent=True), "timeout", False),
    ("429", RateLimitError("429", retry_after=1.0), "429", True),
    ("429 without Retry-After", RateLimitError("429"), "429", True),
    ("503 with Retry-After", ServerError("503", status=503, retry_after=2.0), "503", True),
    ("503", ServerError("503", status=503), "503", False),
    ("500", ServerError("500", status=500), "500", False),
    ("502", ServerError("502", status=502), "502", False),
    ("504", ServerError("504", status=504), "504", False),
    ("501", ServerError("501", status=501), None, False),
    ("401", AuthenticationError("401", status=401), None, False),
    ("malformed reply", ProtocolError("bad", status=200), None, False),
    ("rpc error", InvalidInputError("create_call", ()), None, False),
]


@pytest.mark.parametrize(("name", "error", "cause", "unexecuted"), PREDICATE_TABLE,
                         ids=[row[0] for row in PREDICATE_TABLE])
def test_predicate_table(name: str, error: SippetError, cause: str | None,
                         unexecuted: bool) -> None:
    """Each failure has the documented retry cause and 'provably not executed' verdict."""
    assert cause_of(error) == cause
    if cause is not None:
        assert not_executed(error) is unexecuted


def test_only_the_retry_module_imports_tenacity() -> None:
    """tenacity stays behind _retry.py: no other module of the package imports it."""
    import ast
    from pathlib import Path

    import sippet_async

    importers = []
    for path in Path(sippet_async.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(name.split(".")[0] == "tenacity" for name in names):
                importers.append(path.name)
    assert sorted(set(importers)) == ["_retry.py"]
