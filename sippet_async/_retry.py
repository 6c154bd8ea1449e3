"""Retries: the policy object, its one pure decision, the predicate and the client budget.

The only module that imports tenacity. The retry loop itself is the client's (``_call`` in
``_client.py``): attempt, and on a failure ``RetryRules.decide``, sleep, attempt again. The
loop is ours rather than tenacity's ``AsyncRetrying`` because the first attempt of every
call must cost nothing; the policy speaks tenacity's vocabulary (its wait and stop
strategies), as stamina composes them.

The predicate (docs/protocol.md §12.5): a transient failure is retried when the action may be
sent again. Reads always may; a write only when the failed attempt provably did not
execute (nothing was sent, a 429, a 503 with ``Retry-After``), or when the caller says it
is safe (``idempotent=True``, or an idempotency key the server honours). A write that
failed ambiguously raises ``OutcomeUnknownError`` and is never re-sent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from tenacity import (
    RetryCallState,
    Retrying,
    stop_after_attempt,
    wait_exponential,
    wait_random_exponential,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from sippet_async import _protocol as protocol
from sippet_async._config import (
    DEFAULT_BUDGET,
    DEFAULT_RETRY_AFTER_CAP,
    ClientConfig,
    RetryPolicy,
    check_seconds,
)
from sippet_async._errors import (
    OutcomeUnknownError,
    RateLimitError,
    ServerError,
    SippetError,
    TLSVerificationError,
    TransportError,
    TransportTimeoutError,
    UsageError,
)

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_RETRY_AFTER_CAP",
    "Attempt",
    "Call",
    "Retry",
    "RetryBudget",
    "RetryPolicy",
    "RetryRules",
    "cause_of",
    "check_seconds",
    "not_executed",
    "probe_backoff",
]

# Statuses worth another attempt (§12.1); any other 5xx is a definite answer.
RETRYABLE_STATUSES: Final = frozenset({500, 502, 503, 504})
# tenacity's strategies read a RetryCallState; this is the retrying object it names. It is
# never run: the loop is ours.
_NEVER_RUN: Final = Retrying()


# -- one call -----------------------------------------------------------------------------

class Call(protocol.HttpRequest, frozen=True, kw_only=True):
    """One prepared call: the request, and what the engine needs to read its reply and to
    decide about it. Built once per call, before any I/O, and handed to the transport as
    the request itself (so a call costs one object, not two).

    ``decode(action, response, type)`` turns a reply into the result or raises its error;
    ``resend_safe``: the call may be sent again after an ambiguous failure (§12.4, §12.5);
    ``deadline``: seconds for the whole call, attempts and waits included (None: none).
    """

    action: str
    decode: Callable[[str, protocol.HttpResponse, Any], Any]
    type: Any = None
    resend_safe: bool = True
    deadline: float | None = None

    def __repr__(self) -> str:
        return f"Call(action={self.action!r}, url={self.url!r}, body=<{len(self.body)} bytes>)"


class Attempt(NamedTuple):
    """Where a call stands when attempt ``number`` (from 1) has failed: the data ``decide``
    reads, so that it reads no clock and no shared state itself."""

    number: int
    ambiguous: bool = False  # an earlier attempt failed after it may have executed
    remaining: float | None = None  # seconds left until the call's deadline (None: none)
    tokens: float = math.inf  # the retry budget's tokens now


class Retry(NamedTuple):
    """What ``decide`` concluded when the call goes on: wait ``wait`` seconds, then send it
    again; ``cause`` is the label the retry is counted under; ``ambiguous``: the failed
    attempt may have executed (a re-send of a resend-safe call)."""

    wait: float
    cause: str
    ambiguous: bool


def cause_of(exc: BaseException) -> str | None:
    """Why a failed attempt is worth another one (a short label), or None if it is not."""
    if isinstance(exc, TLSVerificationError):
        return None  # a refused certificate stays refused until the configuration changes
    if isinstance(exc, TransportError):
        if not exc.sent:
            return "connect"
        return "timeout" if isinstance(exc, TransportTimeoutError) else "transport"
    if isinstance(exc, RateLimitError):
        return "429"
    if isinstance(exc, ServerError) and exc.status in RETRYABLE_STATUSES:
        return str(exc.status)
    return None


def not_executed(exc: BaseException) -> bool:
    """Whether the failed attempt provably did not execute, so a write may go again (§12.5)."""
    if isinstance(exc, TransportError):
        return not exc.sent  # refused, DNS, connect timeout: no byte reached the server
    if isinstance(exc, RateLimitError):
        return True
    # A 503 that carries Retry-After is the server saying "not now" before executing.
    return isinstance(exc, ServerError) and exc.status == 503 and exc.retry_after is not None


class RetryBudget:
    """A client-wide token bucket: retries spend tokens, definite replies refill it."""

    __slots__ = ("_capacity", "_refill", "_tokens")

    def __init__(self, capacity: float, refill: float) -> None:
        self._capacity = capacity
        self._refill = refill
        self._tokens = capacity

    @property
    def tokens(self) -> float:
        """Tokens left; a retry needs one."""
        return self._tokens

    def refill(self) -> None:
        """Credit one definite reply: the server is answering."""
        if self._tokens < self._capacity:
            self._tokens = min(self._capacity, self._tokens + self._refill)

    def withdraw(self) -> bool:
        """Spend a token for one retry; False when the budget is exhausted."""
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

@dataclass(frozen=True, slots=True)
class RetryRules:
    """A client's whole retry policy, frozen: which calls may be sent again, how long to
    wait, when to stop. ``decide`` is its one decision.

    Built from tenacity's strategies, composed once: the backoff is a fixed exponential
    part plus a random exponential part (``jitter`` of the ceiling drawn uniformly, "full
    jitter" at 1.0), and ``stop_after_attempt`` counts the attempts. The predicate is
    ``cause_of`` rather than a ``retry_if_exception``: it also names the cause the
    counters and hooks report, so it is evaluated once per failure.
    """

    policy: RetryPolicy
    retry_after_cap: float = DEFAULT_RETRY_AFTER_CAP
    idempotent_actions: frozenset[str] = frozenset()
    honours_idempotency_key: bool = False
    wait: wait_base = field(init=False, repr=False, compare=False)
    stop: stop_base = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        p = self.policy
        fixed, drawn = 1.0 - p.jitter, p.jitter
        wait = wait_exponential(multiplier=p.initial_wait * fixed, max=p.max_wait * fixed) \
            + wait_random_exponential(multiplier=p.initial_wait * drawn, max=p.max_wait * drawn)
        object.__setattr__(self, "wait", wait)
        object.__setattr__(self, "stop", stop_after_attempt(p.attempts))

    @classmethod
    def of(cls, config: ClientConfig) -> RetryRules:
        """The rules a client's configuration sets."""
        return cls(config.retry, config.retry_after_cap, config.idempotent_actions,
                   config.honours_idempotency_key)

    def resend_safe(self, action: str, idempotent: bool | None, key: str | None) -> bool:
        """Whether a call may be sent again after an ambiguous failure (§12.4, §12.5): the
        caller says so, or it is a read or one of ``idempotent_actions``, or it carries an
        idempotency key the server honours."""
        if idempotent is None:
            idempotent = protocol.is_read_action(action) or action in self.idempotent_actions
        elif not isinstance(idempotent, bool):
            raise UsageError(f"idempotent must be True, False or None, got {idempotent!r}")
        return idempotent or (key is not None and self.honours_idempotency_key)

    def decide(self, call: Call, error: SippetError, attempt: Attempt) -> Retry:
        """After ``attempt`` of ``call`` failed with ``error``: the retry to make, or raise
        what the call ends with. Pure: no await, no clock, no shared state.

        Raises:
            SippetError: ``error`` itself when it is a definite answer, when its
                ``Retry-After`` exceeds ``retry_after_cap``, when the attempts are spent
                or the retry budget is empty.
            OutcomeUnknownError: a call that is not resend-safe failed after it may have
                executed (``error`` is its cause); it is never sent again.
            TransportTimeoutError: the wait would run into the deadline (or
                ``OutcomeUnknownError`` when an earlier attempt of a write was ambiguous).
        """
        cause = cause_of(error)
        if cause is None:
            raise error  # a definite answer: nothing to retry
        ambiguous = not not_executed(error)
        if ambiguous and not call.resend_safe:
            raise OutcomeUnknownError(
                f"{call.action}: the write may or may not have executed ({error}); it was "
                "not sent again. Look the record up before retrying it.",
                action=call.action,
            ) from error
        retry_after: float | None = getattr(error, "retry_after", None)
        if retry_after is not None and retry_after > self.retry_after_cap:
            raise error  # say so now rather than sleep through a maintenance window
        state = RetryCallState(_NEVER_RUN, None, (), {})
        state.attempt_number = attempt.number
        if self.stop(state):
            raise error
        wait = float(self.wait(state))
        if retry_after is not None and retry_after > wait:
            wait = retry_after  # Retry-After is the least wait (§12.1)
        if attempt.remaining is not None and wait >= attempt.remaining:
            raise self.deadline_passed(call, error, sent=attempt.ambiguous or ambiguous,
                                       attempts=attempt.number)
        if attempt.tokens < 1.0:
            raise error  # the client-wide budget is spent: an outage must not multiply load
        return Retry(wait, cause, ambiguous)

    def deadline_passed(self, call: Call, error: BaseException, *, sent: bool,
                        attempts: int) -> SippetError:
        """The error a call ends with when its deadline passes: ``TransportTimeoutError``
        (``sent``: a request may have reached the server), or ``OutcomeUnknownError`` when
        that request was a write that is not resend-safe."""
        what = "deadline" if call.deadline is None else f"deadline of {call.deadline:g}s"
        timeout = TransportTimeoutError(
            f"{call.action}: {what} passed after {attempts} attempt(s)", sent=sent)
        timeout.__cause__ = error
        if sent and not call.resend_safe:
            unknown = OutcomeUnknownError(
                f"{call.action}: the {what} passed while the write was in flight; it may "
                "or may not have executed", action=call.action)
            unknown.__cause__ = timeout
            return unknown
        return timeout


def probe_backoff(first: float, growth: float, cap: float, jitter: float
                  ) -> Callable[[int], float]:
    """The breaker's wait before probe ``n`` (from 1): ``first * growth**(n-1)``, capped at
    ``cap``, of which the fraction ``jitter`` is drawn uniformly (tenacity's strategies:
    a fixed exponential part plus a random exponential part)."""
    wait = wait_exponential(multiplier=first * (1 - jitter), exp_base=growth,
                            max=cap * (1 - jitter)) \
        + wait_random_exponential(multiplier=first * jitter, exp_base=growth, max=cap * jitter)
    state = RetryCallState(_NEVER_RUN, None, (), {})  # only attempt_number is read

    def backoff(probe: int) -> float:
        state.attempt_number = probe
        return float(wait(state))

    return backoff
