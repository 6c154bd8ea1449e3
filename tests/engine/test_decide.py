"""RetryRules.decide, the one retry decision, driven directly: a table and properties."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sippet_async import (
    AuthenticationError,
    InvalidInputError,
    OutcomeUnknownError,
    ProtocolError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    SippetError,
    TLSVerificationError,
    TransportError,
    TransportTimeoutError,
)
from sippet_async._protocol import NO_HEADERS, decode_run
from sippet_async._retry import (
    Attempt,
    Call,
    Retry,
    RetryBudget,
    RetryRules,
    cause_of,
    not_executed,
)

EXACT = RetryPolicy(initial_wait=0.5, max_wait=4.0, jitter=0.0)


def call(*, resend_safe: bool = True, deadline: float | None = None,
         action: str = "create_call") -> Call:
    """A prepared call as the client builds one (never sent here)."""
    return Call("http://sippet.test/rpc/public/run", b"{}", {}, NO_HEADERS, action=action,
                decode=decode_run, resend_safe=resend_safe, deadline=deadline)


def rules(policy: RetryPolicy = EXACT, cap: float = 60.0) -> RetryRules:
    return RetryRules(policy, cap)


# -- the table --------------------------------------------------------------------------
# (name, error, resend_safe, attempt, expected): a Retry(wait, cause, ambiguous), the
# error class the call ends with, or "itself" when decide raises the error it was given.
R429 = RateLimitError("429", retry_after=1.0)
R500 = ServerError("500", status=500)
RESET = TransportError("reset", sent=True)
REFUSED = TransportError("refused", sent=False)
TABLE: list[tuple[str, SippetError, bool, Attempt, object]] = [
    ("read after a 500", R500, True, Attempt(1), Retry(0.5, "500", True)),
    ("read after a reset, 2nd retry", RESET, True, Attempt(2), Retry(1.0, "transport", True)),
    ("the last retry, on the last whole token", R500, True, Attempt(3, tokens=1.0),
     Retry(2.0, "500", True)),
    ("write after a refusal", REFUSED, False, Attempt(1), Retry(0.5, "connect", False)),
    ("write after a 429: Retry-After is the least wait", R429, False, Attempt(1),
     Retry(1.0, "429", False)),
    ("write after a 503 with Retry-After", ServerError("503", status=503, retry_after=2.5),
     False, Attempt(1), Retry(2.5, "503", False)),
    ("write after a 500", R500, False, Attempt(1), OutcomeUnknownError),
    ("write after a 503 without Retry-After", ServerError("503", status=503), False,
     Attempt(1), OutcomeUnknownError),
    ("write after a reset", RESET, False, Attempt(1), OutcomeUnknownError),
    ("write after a read timeout", TransportTimeoutError("t", sent=True), False, Attempt(1),
     OutcomeUnknownError),
    ("a 501 is an answer", ServerError("501", status=501), True, Attempt(1), "itself"),
    ("a 401 is an answer", AuthenticationError("401", status=401), True, Attempt(1), "itself"),
    ("an rpc error is an answer", InvalidInputError("create_call", ()), False, Attempt(1),
     "itself"),
    ("a malformed reply is an answer", ProtocolError("bad", status=200), True, Attempt(1),
     "itself"),
    ("a refused certificate stays refused", TLSVerificationError("tls"), True,
     Attempt(1), "itself"),
    ("Retry-After over the cap", RateLimitError("429", retry_after=61.0), True, Attempt(1),
     "itself"),
    ("the attempts are spent", R500, True, Attempt(4), "itself"),
    ("the budget is empty", R500, True, Attempt(1, tokens=0.5), "itself"),
    ("the wait would run into the deadline", R429, False, Attempt(1, remaining=0.9),
     TransportTimeoutError),
    ("the deadline, after an ambiguous read", R500, True,
     Attempt(2, ambiguous=True, remaining=0.2), TransportTimeoutError),
]


@pytest.mark.parametrize(("name", "error", "resend_safe", "attempt", "expected"), TABLE,
                         ids=[row[0] for row in TABLE])
def test_decide_table(name: str, error: SippetError, resend_safe: bool, attempt: Attempt,
                      expected: object) -> None:
    """Each failure, call kind and state gives the documented retry or ending."""
    decide = rules().decide
    if isinstance(expected, Retry):
        assert decide(call(resend_safe=resend_safe), error, attempt) == expected
    elif expected == "itself":
        with pytest.raises(type(error)) as info:
            decide(call(resend_safe=resend_safe), error, attempt)
        assert info.value is error
    else:
        assert isinstance(expected, type)
        with pytest.raises(expected) as ended:
            decide(call(resend_safe=resend_safe), error, attempt)
        assert ended.value.__cause__ is error or ended.value.__cause__.__cause__ is error


def test_the_deadline_says_whether_anything_may_have_executed() -> None:
    """Past the deadline: sent=False after a 429 alone; sent=True (so an unknown outcome
    for a write) once an earlier attempt was ambiguous."""
    decide = rules().decide
    with pytest.raises(TransportTimeoutError) as unsent:
        decide(call(deadline=1.0), R429, Attempt(1, remaining=0.5))
    assert unsent.value.sent is False
    assert "deadline of 1s passed after 1 attempt(s)" in str(unsent.value)
    with pytest.raises(OutcomeUnknownError) as unknown:
        decide(call(resend_safe=False), R429, Attempt(2, ambiguous=True, remaining=0.5))
    assert isinstance(unknown.value.__cause__, TransportTimeoutError)
    assert unknown.value.__cause__.sent is True


@pytest.mark.parametrize(("action", "idempotent", "key", "honoured", "safe"), [
    ("list_contacts", None, None, False, True),
    ("get_contact", None, None, False, True),
    ("create_call", None, None, False, False),
    ("end_call", None, None, False, True),  # in idempotent_actions below
    ("create_call", True, None, False, True),
    ("list_contacts", False, None, False, False),
    ("create_call", None, "k-1", False, False),
    ("create_call", None, "k-1", True, True),
    ("create_call", False, "k-1", True, True),  # the server's replay makes it safe
])
def test_resend_safety(action: str, idempotent: bool | None, key: str | None, honoured: bool,
                       safe: bool) -> None:
    """Reads, idempotent actions, idempotent=True and honoured keys may be sent again."""
    rule = RetryRules(EXACT, 60.0, frozenset({"end_call"}), honoured)
    assert rule.resend_safe(action, idempotent, key) is safe


# -- properties ---------------------------------------------------------------------------

retry_afters = st.one_of(st.none(), st.floats(min_value=0.0, max_value=120.0))
errors = st.one_of(
    st.builds(lambda sent: TransportError("t", sent=sent), st.booleans()),
    st.builds(lambda sent: TransportTimeoutError("t", sent=sent), st.booleans()),
    st.builds(lambda ra: RateLimitError("429", retry_after=ra), retry_afters),
    st.builds(lambda status, ra: ServerError("5xx", status=status, retry_after=ra),
              st.sampled_from([500, 501, 502, 503, 504, 505]), retry_afters),
    st.just(AuthenticationError("401", status=401)),
    st.just(ProtocolError("bad", status=200)),
    st.just(TLSVerificationError("tls")),
)
policies = st.builds(
    lambda attempts, initial, extra, jitter: RetryPolicy(
        attempts=attempts, initial_wait=initial, max_wait=initial + extra, jitter=jitter),
    st.integers(min_value=1, max_value=8), st.floats(min_value=0.0, max_value=5.0),
    st.floats(min_value=0.0, max_value=30.0), st.floats(min_value=0.0, max_value=1.0),
)
caps = st.one_of(st.just(math.inf), st.floats(min_value=0.1, max_value=100.0))
attempts = st.builds(
    Attempt, st.integers(min_value=1, max_value=10), st.booleans(),
    st.one_of(st.none(), st.floats(min_value=0.0, max_value=200.0)),
    st.floats(min_value=0.0, max_value=5.0),
)


def _outcome(rule: RetryRules, c: Call, error: SippetError, attempt: Attempt) -> Any:
    try:
        return rule.decide(c, error, attempt)
    except SippetError as end:
        return end


@settings(max_examples=500, deadline=None)
@given(error=errors, policy=policies, cap=caps, attempt=attempts)
def test_a_write_is_never_resent_after_an_ambiguous_failure(
    error: SippetError, policy: RetryPolicy, cap: float, attempt: Attempt
) -> None:
    """A call that is not resend-safe goes on only after a failure that provably did not
    execute; after an ambiguous transient one it ends with OutcomeUnknownError."""
    outcome = _outcome(RetryRules(policy, cap), call(resend_safe=False), error, attempt)
    if isinstance(outcome, Retry):
        assert not_executed(error)
        assert outcome.ambiguous is False
    if cause_of(error) is not None and not not_executed(error):
        assert isinstance(outcome, OutcomeUnknownError)
        assert outcome.__cause__ is error


@settings(max_examples=500, deadline=None)
@given(error=errors, policy=policies, cap=caps, attempt=attempts, safe=st.booleans())
def test_waits_are_within_the_policy_bounds_and_at_least_retry_after(
    error: SippetError, policy: RetryPolicy, cap: float, attempt: Attempt, safe: bool
) -> None:
    """A retry waits the policy's backoff for that attempt (between its jittered floor and
    its ceiling), or Retry-After when longer; never past the deadline or the cap."""
    outcome = _outcome(RetryRules(policy, cap), call(resend_safe=safe), error, attempt)
    if not isinstance(outcome, Retry):
        return
    retry_after = getattr(error, "retry_after", None) or 0.0
    low = max(policy.backoff(attempt.number, 1.0), retry_after)
    high = max(policy.backoff(attempt.number, 0.0), retry_after)
    assert low - 1e-9 <= outcome.wait <= high + 1e-9
    assert retry_after <= cap
    assert attempt.number < policy.attempts
    assert attempt.remaining is None or outcome.wait < attempt.remaining


@settings(max_examples=200, deadline=None)
@given(policy=policies, budget=st.floats(min_value=0.0, max_value=6.0),
       refill=st.floats(min_value=0.0, max_value=1.0),
       steps=st.lists(st.tuples(errors, st.booleans(), st.integers(1, 8)), max_size=60))
def test_the_budget_is_never_overdrawn(policy: RetryPolicy, budget: float, refill: float,
                                       steps: list[tuple[SippetError, bool, int]]) -> None:
    """Calls sharing one budget: decide allows a retry only with a whole token left, so
    every retry it allows can be paid for, and the tokens never go below zero."""
    tokens = RetryBudget(budget, refill)
    rule = RetryRules(policy, math.inf)
    for error, succeeded_since, number in steps:
        if succeeded_since:
            tokens.refill()
        outcome = _outcome(rule, call(), error, Attempt(number, tokens=tokens.tokens))
        if isinstance(outcome, Retry):
            assert tokens.withdraw()
        assert tokens.tokens >= 0.0


@settings(max_examples=200, deadline=None)
@given(error=errors, cap=caps, attempt=attempts, safe=st.booleans())
def test_decide_is_pure(error: SippetError, cap: float, attempt: Attempt, safe: bool) -> None:
    """Without jitter, the same inputs give the same outcome: decide reads nothing else."""
    rule = RetryRules(RetryPolicy(jitter=0.0), cap)
    first = _outcome(rule, call(resend_safe=safe), error, attempt)
    second = _outcome(rule, call(resend_safe=safe), error, attempt)
    assert type(first) is type(second)
    if isinstance(first, Retry):
        assert first == second
