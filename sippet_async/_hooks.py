"""Observability of the request engine: hooks, their events, and the client's ``Counters``.

Two styles of hooks, both passed as ``SippetClient(hooks=...)``:

* **An ``Observer``** (the style to use): subclass it and override any of ``on_request``,
  ``on_retry``, ``on_response``, ``on_pause``, ``on_breaker``, ``on_call_start``,
  ``on_call_end``; each takes one frozen event (``RequestEvent``, ``RetryEvent``, ...).
  Events gain fields over time without breaking an observer.
* **``Hooks``** (the first style, kept working): an object with three positional methods
  and an optional ``on_breaker(state, wait)``.

The client tells them apart by class, once, when it is built: an instance of ``Observer``
gets events; any other object must have the three ``Hooks`` methods. Signatures are not
inspected (a decorator or ``*args`` would fool that), and an object needs no marker.

Hooks are called inline on the request path, so they must be quick and must not block;
hand anything slow to a queue. An exception raised in one fails the call. They never see
the API key or the request headers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol, runtime_checkable

from sippet_async._errors import UsageError

__all__ = [
    "BreakerEvent",
    "BreakerHook",
    "CallEndEvent",
    "CallStartEvent",
    "CallWatch",
    "Counters",
    "EngineHooks",
    "Hooks",
    "Observer",
    "PauseEvent",
    "PauseHook",
    "RequestEvent",
    "ResponseEvent",
    "RetryEvent",
    "engine_hooks",
]


@runtime_checkable
class Hooks(Protocol):
    """Callbacks for metrics and tracing; implement the three methods (no-ops are fine).

    The first style of hooks, kept working unchanged; new code can subclass ``Observer``
    instead, whose methods take one event object and which also hears of pauses.

    One more method is optional, called only when the hooks object has it:
    ``on_breaker(state: str, wait: float) -> None``, on every change of the client's
    breaker: ``"suspect"`` (an attempt got no answer; the next one goes alone as a scout),
    ``"scouting"`` (the scout is out; other attempts wait for it), ``"open"`` (the server
    looks unreachable; the next probe may go in ``wait`` seconds), ``"probing"`` (a probe
    is out) or ``"closed"`` (something answered).

    Example:
        class Metrics:
            def on_request(self, action: str, attempt: int) -> None: sent.inc()
            def on_retry(self, action: str, attempt: int, cause: str, wait: float) -> None: ...
            def on_response(self, action: str, attempt: int, status: int,
                            elapsed: float) -> None: ...
    """

    def on_request(self, action: str, attempt: int) -> None:
        """An HTTP attempt is about to be sent (``attempt`` counts from 1)."""

    def on_retry(self, action: str, attempt: int, cause: str, wait: float) -> None:
        """Attempt ``attempt`` failed with ``cause``; the next one follows after ``wait`` s."""

    def on_response(self, action: str, attempt: int, status: int, elapsed: float) -> None:
        """A reply arrived: its HTTP status and the seconds the exchange took."""


# -- events ---------------------------------------------------------------------------------
# Stable: fields may be added (with defaults), none will be removed or renamed. Keyword-only,
# so a field added anywhere breaks no one who builds an event (a test of an observer).


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestEvent:
    """An HTTP attempt of ``action`` is about to be sent (``attempt`` counts from 1)."""

    action: str
    attempt: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryEvent:
    """Attempt ``attempt`` of ``action`` failed; the next one follows after ``wait`` seconds.

    Attributes:
        cause: ``"connect"``, ``"timeout"``, ``"transport"``, ``"429"``, ``"500"``,
            ``"502"``, ``"503"``, ``"504"`` (the keys of ``Counters.retries``), or
            ``"unknown"``.
    """

    action: str
    attempt: int
    cause: str
    wait: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseEvent:
    """A reply to attempt ``attempt`` of ``action`` arrived.

    Attributes:
        status: its HTTP status, whatever it is (a 503 is a response too).
        duration: seconds from handing the request to the transport to the reply.
    """

    action: str
    attempt: int
    status: int
    duration: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PauseEvent:
    """The reply to attempt ``attempt`` of ``action`` began or extended the client's shared
    pause: no request of the client is sent for ``wait`` seconds from now.

    ``Counters.pauses`` counts the pauses that begin; an observer also hears of each one
    that grows (another reply asking for a longer wait).

    Attributes:
        cause: ``"429"`` or ``"503"`` (a reply with ``Retry-After``), ``"hint"``
            (``RateLimit-Remaining: 0`` until the window resets), or ``"shared"`` (a pause
            heard by a shared limiter, e.g. another process's 429; ``action`` is
            ``"(shared)"`` and ``attempt`` 0).
    """

    action: str
    attempt: int
    cause: str
    wait: float


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerEvent:
    """The client's breaker changed state.

    Attributes:
        state: ``"suspect"`` (an attempt got no answer; the next one goes alone as a scout),
            ``"scouting"`` (the scout is out; other attempts wait for it), ``"open"`` (the
            server looks unreachable), ``"probing"`` (a probe is out) or ``"closed"``
            (something answered).
        wait: with ``"open"``, seconds until the next probe may go.
    """

    state: str
    wait: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStartEvent:
    """A call of ``action`` (``run``, ``validate``, a page of ``iter``, an item of
    ``bulk``) begins, before it waits for any limit.

    Attributes:
        url: the URL it is sent to (the client's ``base_url`` and the endpoint; never
            credentials, which ``base_url`` cannot carry).
    """

    action: str
    url: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEndEvent:
    """The call of ``action`` ended: every attempt, retry and wait is behind it.

    Attributes:
        attempts: attempts made (1 without retries; one refused by an open breaker counts).
        error: what the call raised (a ``SippetError``, ``asyncio.CancelledError`` if it
            was cancelled, or whatever a hook raised); None if it returned a result.
        duration: seconds from ``CallStartEvent`` to now.
    """

    action: str
    attempts: int
    error: BaseException | None
    duration: float


class Observer:
    """Event hooks: subclass and override the methods you need; each gets one event.

    A method left as it is here is never called, and its event is never built. The client
    recognises an observer by this base class (see the module docstring), so subclassing
    it is what selects the event style.

    Example:
        class Metrics(Observer):
            def on_response(self, event: ResponseEvent) -> None:
                latency.labels(event.action, event.status).observe(event.duration)

            def on_pause(self, event: PauseEvent) -> None:
                log.warning("paused %.1fs after a %s", event.wait, event.cause)

        client = SippetClient(hooks=Metrics())
    """

    __slots__ = ()

    def on_request(self, event: RequestEvent) -> None:
        """An HTTP attempt is about to be sent."""

    def on_retry(self, event: RetryEvent) -> None:
        """An attempt failed and the call will try again after ``event.wait``."""

    def on_response(self, event: ResponseEvent) -> None:
        """A reply arrived (any status)."""

    def on_pause(self, event: PauseEvent) -> None:
        """A 429, a 503 with ``Retry-After`` or an exhausted window paused every request."""

    def on_breaker(self, event: BreakerEvent) -> None:
        """The breaker changed state."""

    def on_call_start(self, event: CallStartEvent) -> None:
        """A call begins (one per ``run``, ``validate``, page or bulk item); the events of
        its attempts follow in the same task, so a ``contextvars.ContextVar`` set here
        tells concurrent calls apart."""

    def on_call_end(self, event: CallEndEvent) -> None:
        """The call that ``on_call_start`` announced (in this same task) ended."""


# -- what the engine calls ------------------------------------------------------------------

PauseHook = Callable[[str, int, str, float], None]  # (action, attempt, cause, wait)
BreakerHook = Callable[[str, float], None]  # (state, wait)


class CallWatch(Protocol):
    """What the engine calls around each call, for an observer of calls."""

    def call_start(self, action: str, url: str) -> None: ...

    def call_end(self, action: str, attempts: int, error: BaseException | None,
                 duration: float) -> None: ...


@dataclass(frozen=True, slots=True)
class EngineHooks:
    """The user's hooks as the engine calls them, positional; None where nothing listens.

    ``calls`` is the user's own object for ``Hooks``, or a relay that builds events for an
    ``Observer``; it is None unless someone listens to requests, retries or responses, so
    a client without hooks builds and calls nothing per request. ``watch`` likewise is
    None unless an ``Observer`` listens to call starts or ends.
    """

    calls: Hooks | None = None
    on_pause: PauseHook | None = None
    on_breaker: BreakerHook | None = None
    watch: CallWatch | None = None


def engine_hooks(hooks: Hooks | Observer | None) -> EngineHooks:
    """Sort ``hooks=`` out once, when the client is built.

    Raises:
        UsageError: ``hooks`` is neither an ``Observer``, a ``Hooks`` instance nor None.
    """
    if hooks is None:
        return _NO_HOOKS
    if isinstance(hooks, Observer):
        relay = _Relay(hooks)
        return EngineHooks(
            calls=relay if relay.per_attempt else None,
            on_pause=relay.on_pause if relay.pause is not None else None,
            on_breaker=relay.on_breaker if relay.breaker is not None else None,
            watch=relay if relay.started is not None or relay.ended is not None else None,
        )
    # A class has the methods too, but calling them unbound would fail on the first request.
    if isinstance(hooks, type) or not isinstance(hooks, Hooks):
        raise UsageError("hooks must be an Observer, or an object with on_request, on_retry "
                         f"and on_response (see Hooks), got {hooks!r}")
    # on_breaker is optional: Hooks written before it existed keep working.
    return EngineHooks(calls=hooks, on_breaker=getattr(hooks, "on_breaker", None))


_NO_HOOKS: Final = EngineHooks()


def _overridden(observer: Observer, name: str) -> bool:
    """Whether ``observer`` has its own ``name`` (its class's or an attribute it was given)."""
    method = getattr(observer, name)
    return getattr(method, "__func__", method) is not getattr(Observer, name)


class _Relay:
    """An ``Observer`` behind the positional ``Hooks`` methods: each builds its event only
    when the observer overrides the matching method."""

    __slots__ = ("breaker", "ended", "pause", "per_attempt", "request", "response", "retry",
                 "started")

    def __init__(self, observer: Observer) -> None:
        self.request = observer.on_request if _overridden(observer, "on_request") else None
        self.retry = observer.on_retry if _overridden(observer, "on_retry") else None
        self.response = observer.on_response if _overridden(observer, "on_response") else None
        self.pause = observer.on_pause if _overridden(observer, "on_pause") else None
        self.breaker = observer.on_breaker if _overridden(observer, "on_breaker") else None
        self.started = (observer.on_call_start if _overridden(observer, "on_call_start")
                        else None)
        self.ended = observer.on_call_end if _overridden(observer, "on_call_end") else None
        self.per_attempt = (self.request is not None or self.retry is not None
                            or self.response is not None)

    def on_request(self, action: str, attempt: int) -> None:
        if self.request is not None:
            self.request(RequestEvent(action=action, attempt=attempt))

    def on_retry(self, action: str, attempt: int, cause: str, wait: float) -> None:
        if self.retry is not None:
            self.retry(RetryEvent(action=action, attempt=attempt, cause=cause, wait=wait))

    def on_response(self, action: str, attempt: int, status: int, elapsed: float) -> None:
        if self.response is not None:
            self.response(ResponseEvent(action=action, attempt=attempt, status=status,
                                        duration=elapsed))

    def on_pause(self, action: str, attempt: int, cause: str, wait: float) -> None:
        if self.pause is not None:
            self.pause(PauseEvent(action=action, attempt=attempt, cause=cause, wait=wait))

    def on_breaker(self, state: str, wait: float) -> None:
        if self.breaker is not None:
            self.breaker(BreakerEvent(state=state, wait=wait))

    def call_start(self, action: str, url: str) -> None:
        if self.started is not None:
            self.started(CallStartEvent(action=action, url=url))

    def call_end(self, action: str, attempts: int, error: BaseException | None,
                 duration: float) -> None:
        if self.ended is not None:
            self.ended(CallEndEvent(action=action, attempts=attempts, error=error,
                                       duration=duration))


@dataclass(slots=True)
class Counters:
    """What this client has done so far; live, read it any time (``client.counters``).

    Attributes:
        requests: HTTP attempts sent (first attempts and retries).
        retries: retries sent, by cause (``"connect"``, ``"timeout"``, ``"transport"``,
            ``"429"``, ``"500"``, ``"502"``, ``"503"``, ``"504"``).
        rate_limited: 429 replies received.
        pauses: times every request was held back by a ``Retry-After`` or an exhausted
            ``RateLimit-Remaining`` (one shared pause, however many tasks waited).
        budget_refusals: retries not sent because the client-wide retry budget was empty.
        unknown_outcomes: writes that failed ambiguously (``OutcomeUnknownError``).
        breaker: the breaker's state now: ``"closed"``, ``"suspect"``, ``"scouting"``,
            ``"open"`` or ``"probing"`` (see ``Hooks``).
        breaker_openings: times connection failures opened the breaker (an outage began).
        probes: attempts sent as the breaker's probe (each counted in ``requests`` too).
        short_circuited: attempts not sent because the breaker was open
            (``ServerUnreachableError``).
    """

    requests: int = 0
    retries: dict[str, int] = field(default_factory=dict)
    rate_limited: int = 0
    pauses: int = 0
    budget_refusals: int = 0
    unknown_outcomes: int = 0
    breaker: str = "closed"
    breaker_openings: int = 0
    probes: int = 0
    short_circuited: int = 0

    @property
    def total_retries(self) -> int:
        """All retries, whatever their cause."""
        return sum(self.retries.values())

    def _count_retry(self, cause: str) -> None:
        """Record one retry caused by ``cause``."""
        self.retries[cause] = self.retries.get(cause, 0) + 1
