"""Fault scripts of the fake server: random failures, latency and a rolling-window rate limit.

Faults stand for the layers in front of Sippet's RPC controller (docs/protocol.md §12.1), so they
apply only to the two RPC paths and answer with non-200 statuses and non-envelope bodies.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

FaultKind = Literal["http_500", "http_503", "http_429", "reset_before", "lost_after_commit"]
_WINDOW: Final = 1.0  # seconds of the rolling rate-limit window


@dataclass(frozen=True, kw_only=True)
class Faults:
    """What goes wrong, and how often; each request draws once from the server's seeded RNG.

    Args:
        p_500: HTTP 500 with an HTML body; not executed.
        p_503: HTTP 503 with ``Retry-After: retry_after``; not executed.
        p_429: HTTP 429 with ``Retry-After: retry_after``; not executed.
        p_reset_before: connection aborted before executing.
        p_lost_after_commit: the action executes, then the connection is aborted unanswered.
        retry_after: seconds sent in ``Retry-After`` by the 503 and 429 faults.
        latency: seconds added to each faultable request.
        rate_limit: at most this many requests are admitted in any rolling second; the rest
            get 429 with the exact ``Retry-After`` and are not executed.
        rate_limit_headers: also send ``RateLimit-Limit/Remaining/Reset`` with 429s.
        only_actions: when set, faults apply only to requests naming these actions.

    Example:
        >>> server.faults = Faults(p_503=0.2, only_actions={"create_contact"})
    """

    p_500: float = 0.0
    p_503: float = 0.0
    p_429: float = 0.0
    p_reset_before: float = 0.0
    p_lost_after_commit: float = 0.0
    retry_after: float = 1.0
    latency: float = 0.0
    rate_limit: int | None = None
    rate_limit_headers: bool = False
    only_actions: frozenset[str] | None = field(default=None)

    def __post_init__(self) -> None:
        chances = self._chances()
        for name, chance in chances:
            if not 0.0 <= chance <= 1.0:
                raise ValueError(f"Faults.{name} must be within [0, 1], got {chance!r}")
        if sum(chance for _, chance in chances) > 1.0 + 1e-9:
            raise ValueError("Faults probabilities must add up to at most 1")
        if self.retry_after < 0 or self.latency < 0:
            raise ValueError("Faults.retry_after and Faults.latency must be >= 0")
        if self.rate_limit is not None and self.rate_limit < 1:
            raise ValueError(f"Faults.rate_limit must be >= 1, got {self.rate_limit!r}")
        if self.only_actions is not None and not isinstance(self.only_actions, frozenset):
            actions: Iterable[str] = self.only_actions
            object.__setattr__(self, "only_actions", frozenset(actions))

    def _chances(self) -> list[tuple[str, float]]:
        return [
            ("p_500", self.p_500),
            ("p_503", self.p_503),
            ("p_429", self.p_429),
            ("p_reset_before", self.p_reset_before),
            ("p_lost_after_commit", self.p_lost_after_commit),
        ]

    def applies_to(self, action: str | None) -> bool:
        """Whether this script covers a request for ``action``."""
        return self.only_actions is None or action in self.only_actions

    def _pick(self, draw: float) -> FaultKind | None:
        """The fault a uniform ``draw`` in [0, 1) selects, in declaration order, or None."""
        kinds: tuple[FaultKind, ...] = (
            "http_500",
            "http_503",
            "http_429",
            "reset_before",
            "lost_after_commit",
        )
        edge = 0.0
        for kind, (_, chance) in zip(kinds, self._chances(), strict=True):
            edge += chance
            if draw < edge:
                return kind
        return None


class RollingWindow:
    """Admits at most ``limit`` requests in any rolling second; rejected ones do not count."""

    def __init__(self) -> None:
        self._admitted: deque[float] = deque()

    def admit(self, now: float, limit: int) -> float | None:
        """Admit a request at ``now``; else return the seconds until a slot frees up."""
        while self._admitted and self._admitted[0] <= now - _WINDOW:
            self._admitted.popleft()
        if len(self._admitted) < limit:
            self._admitted.append(now)
            return None
        return max(self._admitted[-limit] + _WINDOW - now, 0.001)


def seconds(value: float) -> str:
    """``Retry-After`` delta-seconds: an integer when whole, else a decimal (§12.1 allows both)."""
    millis = math.ceil(value * 1000 - 1e-9)  # rounded up: never invite an early retry
    if millis % 1000 == 0:
        return str(millis // 1000)
    return f"{millis / 1000:.3f}".rstrip("0")


def rate_limit_headers(retry_after: float, limit: int | None) -> dict[str, str]:
    """Optional ``RateLimit-*`` hints sent with a 429 (§12.1)."""
    headers = {"RateLimit-Remaining": "0", "RateLimit-Reset": str(math.ceil(retry_after))}
    if limit is not None:
        headers["RateLimit-Limit"] = str(limit)
    return headers


HTML_500: Final = (
    b"<html><head><title>500 Internal Server Error</title></head>"
    b"<body><h1>Internal Server Error</h1></body></html>"
)
HTML_503: Final = (
    b"<html><head><title>503 Service Unavailable</title></head>"
    b"<body><h1>Service Unavailable</h1></body></html>"
)
TEXT_429: Final = b"429 Too Many Requests"
