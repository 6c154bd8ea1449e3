"""Observability of the request engine: the ``Hooks`` protocol and the client's ``Counters``.

Hooks are called inline on the request path, so they must be quick and must not block;
hand anything slow to a queue. They never see the API key or the request headers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = ["Counters", "Hooks"]


@runtime_checkable
class Hooks(Protocol):
    """Callbacks for metrics and tracing; implement the three methods (no-ops are fine).

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

    def count_retry(self, cause: str) -> None:
        """Record one retry caused by ``cause``."""
        self.retries[cause] = self.retries.get(cause, 0) + 1
