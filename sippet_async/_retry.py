"""Retries: the policy, the one predicate, the client-wide budget, and the per-call deadline.

The only module that imports tenacity. The first attempt of every call is awaited directly;
tenacity's ``AsyncRetrying`` is entered only once an attempt has failed with something
worth retrying, so a call that succeeds pays nothing for it.

The predicate (docs/protocol.md §12.5): a transient failure is retried when the action may be
sent again. Reads always may; a write only when the failed attempt provably did not
execute (nothing was sent, a 429, a 503 with ``Retry-After``), or when the caller says it
is safe (``idempotent=True``, or an idempotency key the server honours). A write that
failed ambiguously raises ``OutcomeUnknownError`` and is never re-sent.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, NoReturn, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    wait_exponential,
    wait_random_exponential,
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
from sippet_async._hooks import Counters, Hooks

__all__ = [
    "DEFAULT_RETRY_AFTER_CAP",
    "CallState",
    "Retrier",
    "RetryBudget",
    "RetryPolicy",
    "cause_of",
    "check_seconds",
    "not_executed",
    "probe_backoff",
]

R = TypeVar("R")
Sleep = Callable[[float], Awaitable[None]]

log: Final = logging.getLogger("sippet_async")

# 1 attempt + 3 retries: at an 18% transient failure rate a call still fails only with
# probability 0.18**4 ~ 0.1%, and an outage costs at most 4 attempts per call.
DEFAULT_ATTEMPTS: Final = 4
# Short enough that a blip costs ~0.1-0.2 s on average (full jitter halves the mean)...
DEFAULT_INITIAL_WAIT: Final = 0.25
# ...and capped so a long run of failures never backs off for more than 10 s at a time.
DEFAULT_MAX_WAIT: Final = 10.0
# Retry budget (gRPC retry throttling / botocore retry quota): each retry costs one token,
# each definite reply refunds BUDGET_REFILL. 0.5 sustains one retry per two successes, i.e.
# a steady failure rate up to ~33% (18% needs ~0.22 retries per success); in a total outage
# the 50 tokens drain and each call then costs one attempt, not four.
DEFAULT_BUDGET: Final = 50.0
DEFAULT_BUDGET_REFILL: Final = 0.5
# Rate limits reset within seconds to a minute; a longer Retry-After (maintenance, a daily
# quota) is better reported to the caller than slept through.
DEFAULT_RETRY_AFTER_CAP: Final = 60.0
# Statuses worth another attempt (§12.1); any other 5xx is a definite answer.
RETRYABLE_STATUSES: Final = frozenset({500, 502, 503, 504})


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How a client retries: attempts, full-jitter exponential backoff, the retry budget.

    ``Retry-After`` is honoured as the minimum wait. ``attempts=1`` disables retries.

    Args:
        attempts: attempts per call, the first included.
        initial_wait: backoff ceiling after the first failure, in seconds; it doubles per
            retry up to ``max_wait``.
        max_wait: the largest backoff ceiling, in seconds.
        jitter: the fraction of the ceiling that is randomised: 1.0 waits uniformly in
            [0, ceiling] ("full jitter"), 0.0 waits exactly the ceiling.
        budget: retry tokens shared by the whole client; a retry costs one.
        budget_refill: tokens refunded by each attempt that got a definite reply.
        sleep: the coroutine used to wait (retry waits and shared pauses); inject a fake
            one in tests so nothing waits.

    Example:
        client = SippetClient(retry=RetryPolicy(attempts=6, max_wait=30.0))
    """

    attempts: int = DEFAULT_ATTEMPTS
    initial_wait: float = DEFAULT_INITIAL_WAIT
    max_wait: float = DEFAULT_MAX_WAIT
    jitter: float = 1.0
    budget: float = DEFAULT_BUDGET
    budget_refill: float = DEFAULT_BUDGET_REFILL
    sleep: Sleep | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) \
                or self.attempts < 1:
            raise UsageError(f"RetryPolicy.attempts must be an int >= 1, got {self.attempts!r}")
        for name in ("initial_wait", "max_wait", "budget", "budget_refill"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value) or value < 0:
                raise UsageError(f"RetryPolicy.{name} must be a number >= 0, got {value!r}")
        if self.max_wait < self.initial_wait:
            raise UsageError(f"RetryPolicy.max_wait ({self.max_wait!r}) must be >= "
                             f"initial_wait ({self.initial_wait!r})")
        if isinstance(self.jitter, bool) or not isinstance(self.jitter, int | float) \
                or not 0.0 <= self.jitter <= 1.0:
            raise UsageError(f"RetryPolicy.jitter must be within [0, 1], got {self.jitter!r}")
        if self.sleep is not None and not callable(self.sleep):
            raise UsageError(f"RetryPolicy.sleep must be a coroutine function, "
                             f"got {self.sleep!r}")

    def backoff(self, retry: int, draw: float) -> float:
        """The wait before retry number ``retry`` (from 1), given a uniform ``draw`` in [0, 1)."""
        ceiling = min(self.max_wait, self.initial_wait * 2.0 ** min(retry - 1, 62))
        return ceiling * (1.0 - self.jitter * draw)


def probe_backoff(first: float, growth: float, cap: float, jitter: float
                  ) -> Callable[[int], float]:
    """The breaker's wait before probe ``n`` (from 1): ``first * growth**(n-1)``, capped at
    ``cap``, of which the fraction ``jitter`` is drawn uniformly (tenacity's strategies:
    a fixed exponential part plus a random exponential part)."""
    wait = wait_exponential(multiplier=first * (1 - jitter), exp_base=growth,
                            max=cap * (1 - jitter)) \
        + wait_random_exponential(multiplier=first * jitter, exp_base=growth, max=cap * jitter)
    state = RetryCallState(AsyncRetrying(), None, (), {})  # only attempt_number is read

    def backoff(probe: int) -> float:
        state.attempt_number = probe
        return float(wait(state))

    return backoff


def check_seconds(name: str, value: float | None) -> float | None:
    """A validated duration in seconds: positive, or None / infinity for "no limit"."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) \
            or value <= 0:
        raise UsageError(f"{name} must be a positive number of seconds, got {value!r}")
    return None if math.isinf(value) else float(value)


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


class CallState:
    """One call's progress through its attempts, shared by the pipeline and the retrier."""

    # Class-level defaults: a call that succeeds at once sets only what __init__ sets
    # (one of these is built per request).
    attempt: int = 1
    in_flight: bool = False  # between sent() and the reply: the request may execute
    maybe_executed: bool = False  # an earlier attempt failed ambiguously
    probe: int = 0  # this attempt is the breaker's scout or probe of this turn (0: not)
    retry_cause: str = "unknown"  # why this attempt is a retry (attempt > 1)
    deadline: float | None = None  # seconds for the whole call
    deadline_at: float | None = None  # the same, on the loop's clock
    stopped_by: str | None = None
    _started: float = 0.0

    def __init__(self, action: str, resend_safe: bool, counters: Counters,
                 hooks: Hooks | None) -> None:
        self.action = action
        self.resend_safe = resend_safe
        self._counters = counters
        self._hooks = hooks

    def sent(self) -> None:
        """The attempt is being handed to the transport."""
        self.in_flight = True
        self._counters.requests += 1
        if self.attempt > 1:  # a retry the breaker or the pause gate held back is not one
            self._counters.count_retry(self.retry_cause)
        if self._hooks is not None:
            self._started = time.perf_counter()
            self._hooks.on_request(self.action, self.attempt)

    def received(self, status: int) -> None:
        """A reply arrived (whatever its status)."""
        self.in_flight = False
        if self._hooks is not None:
            self._hooks.on_response(self.action, self.attempt, status,
                                    time.perf_counter() - self._started)


class Retrier:
    """Runs a call's attempts under a RetryPolicy, a shared RetryBudget and a deadline."""

    def __init__(self, policy: RetryPolicy, *, retry_after_cap: float, counters: Counters,
                 hooks: Hooks | None) -> None:
        self.policy = policy
        self.budget = RetryBudget(policy.budget, policy.budget_refill)
        self._cap = retry_after_cap
        self._counters = counters
        self._hooks = hooks
        self._sleep: Sleep = policy.sleep or asyncio.sleep
        self._random = random.Random()

    def start(self, action: str, resend_safe: bool) -> CallState:
        """The state of a new call."""
        return CallState(action, resend_safe, self._counters, self._hooks)

    def run(self, attempt: Callable[[CallState], Awaitable[R]], call: CallState,
            deadline: float | None) -> Awaitable[R]:
        """Run ``attempt`` until it succeeds or may not be retried; ``deadline`` bounds all.

        Raises:
            OutcomeUnknownError: a write failed ambiguously (the cause is ``__cause__``).
            TransportTimeoutError: the deadline passed (the last failure is ``__cause__``).
        """
        if deadline is None:
            return self._run(attempt, call)  # no extra coroutine frame on the hot path
        return self._run_within(attempt, call, deadline)

    async def _run_within(self, attempt: Callable[[CallState], Awaitable[R]],
                          call: CallState, deadline: float) -> R:
        call.deadline = deadline
        call.deadline_at = asyncio.get_running_loop().time() + deadline
        scope = asyncio.timeout_at(call.deadline_at)
        try:
            async with scope:
                return await self._run(attempt, call)
        except TimeoutError as exc:
            if not scope.expired():
                raise  # a transport timeout of one attempt, already typed
            self._deadline_passed(call, exc)

    async def _run(self, attempt: Callable[[CallState], Awaitable[R]], call: CallState) -> R:
        try:
            result = await attempt(call)  # the common case: no tenacity, no allocation
        except SippetError as exc:
            return await self.recover(attempt, call, exc)
        self.budget.refill()
        return result

    async def recover(self, attempt: Callable[[CallState], Awaitable[R]], call: CallState,
                      failed: SippetError) -> R:
        """Continue a call whose first attempt raised ``failed``: retry it while the
        policy, the budget and the action allow, else raise what the call ends with.

        The caller awaits the first attempt itself, so a call that succeeds never gets here.
        """
        if not self._worth_retrying(failed, call):
            self._fail(failed, call)
        return await self._retry(attempt, call, failed)

    async def _retry(self, attempt: Callable[[CallState], Awaitable[R]], call: CallState,
                     first: SippetError) -> R:
        pending: SippetError | None = first

        async def again() -> R:
            nonlocal pending
            if pending is not None:  # tenacity's attempt 1 is the one that already failed
                failed, pending = pending, None
                raise failed
            call.attempt += 1
            try:
                result = await attempt(call)
            except SippetError as exc:
                self._worth_retrying(exc, call)  # updates the budget and call state
                raise
            self.budget.refill()
            return result

        retrying = AsyncRetrying(
            sleep=self._sleep,
            retry=retry_if_exception(lambda exc: self._may_resend(exc, call)),
            wait=lambda state: self._wait(state),
            stop=lambda state: self._stop(state, call),
            before_sleep=lambda state: self._before_sleep(state, call),
            reraise=True,
        )
        try:
            return await retrying(again)
        except SippetError as exc:
            if call.stopped_by == "deadline":
                self._deadline_passed(call, exc)
            self._fail(exc, call)

    # -- the predicate ----------------------------------------------------------------

    def _worth_retrying(self, exc: SippetError, call: CallState) -> bool:
        """Note a failed attempt; True when another attempt may follow it."""
        call.in_flight = False
        if cause_of(exc) is None:
            self.budget.refill()  # a definite answer: the server is up
            return False
        if not not_executed(exc):
            call.maybe_executed = True
        return self._may_resend(exc, call)

    def _may_resend(self, exc: BaseException, call: CallState) -> bool:
        if cause_of(exc) is None:
            return False
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None and retry_after > self._cap:
            return False  # raise RateLimitError / ServerError now rather than sleep an hour
        return call.resend_safe or not_executed(exc)

    def _fail(self, exc: SippetError, call: CallState) -> NoReturn:
        """Raise the error a call ends with: an ambiguous write becomes OutcomeUnknownError."""
        if not call.resend_safe and cause_of(exc) is not None and not not_executed(exc):
            self._counters.unknown_outcomes += 1
            log.warning("%s: outcome unknown after attempt %d (%s); not re-sent",
                        call.action, call.attempt, cause_of(exc))
            raise OutcomeUnknownError(
                f"{call.action}: the write may or may not have executed ({exc}); it was not "
                "sent again. Look the record up before retrying it.",
                action=call.action,
            ) from exc
        raise exc

    def _deadline_passed(self, call: CallState, exc: BaseException) -> NoReturn:
        sent = call.in_flight or call.maybe_executed
        what = "deadline" if call.deadline is None else f"deadline of {call.deadline:g}s"
        timeout = TransportTimeoutError(
            f"{call.action}: {what} passed after {call.attempt} attempt(s)", sent=sent)
        timeout.__cause__ = exc
        if sent and not call.resend_safe:
            self._counters.unknown_outcomes += 1
            raise OutcomeUnknownError(
                f"{call.action}: the {what} passed while the write was in flight; it may "
                "or may not have executed", action=call.action) from timeout
        raise timeout

    # -- tenacity callbacks -----------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = self.policy.backoff(state.attempt_number, self._random.random())
        retry_after = getattr(exc, "retry_after", None)
        return max(wait, retry_after) if retry_after is not None else wait

    def _stop(self, state: RetryCallState, call: CallState) -> bool:
        if state.attempt_number >= self.policy.attempts:
            call.stopped_by = "attempts"
            return True
        wait = state.upcoming_sleep
        if call.deadline_at is not None \
                and asyncio.get_running_loop().time() + wait >= call.deadline_at:
            call.stopped_by = "deadline"  # waiting would only run into the deadline
            return True
        if not self.budget.withdraw():
            call.stopped_by = "budget"
            self._counters.budget_refusals += 1
            log.info("%s: retry budget exhausted; not retrying attempt %d", call.action,
                     state.attempt_number)
            return True
        return False

    def _before_sleep(self, state: RetryCallState, call: CallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        cause = cause_of(exc) if exc is not None else None
        label = cause or "unknown"
        wait = state.upcoming_sleep
        call.retry_cause = label  # counted once the retry is sent (see CallState.sent)
        log.info("%s: attempt %d failed (%s); retrying in %.3fs", call.action,
                 state.attempt_number, label, wait)
        if self._hooks is not None:
            self._hooks.on_retry(call.action, state.attempt_number, label, wait)
