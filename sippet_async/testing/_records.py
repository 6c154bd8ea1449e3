"""What the fake server records about each request, and the scripted replies it can send."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True, kw_only=True)
class RecordedRequest:
    """One request as the server saw it, with what it did about it.

    Attributes:
        path, method: of the HTTP request.
        headers: a copy, names lower-cased.
        body: raw bytes; ``json``: the body decoded as JSON whatever its Content-Type, or
            None when it is not JSON.
        action: the body's ``action`` when it is a string, else None.
        status: the HTTP status answered; None while in flight or when no reply was sent.
        executed: whether the action ran to a success envelope: a create stored, an update
            or destroy applied, a read answered, a ``/validate`` passed. Failed requests
            (RPC errors, 401, faults before executing, replays) are False.
        fault: the injected fault: ``http_500``, ``http_503``, ``http_429``,
            ``rate_limited``, ``reset_before``, ``lost_after_commit``, or ``scripted``.
        replayed: answered from the idempotency-key cache without executing.
        latency: seconds the server waited before handling.
        received_at: the server clock (``loop.time()`` by default) at arrival.
    """

    path: str
    method: str
    headers: dict[str, str]
    body: bytes
    json: Any
    action: str | None
    status: int | None
    executed: bool
    fault: str | None
    replayed: bool = False
    latency: float = 0.0
    received_at: float = 0.0


@dataclass(kw_only=True)
class _Entry:
    """The mutable record kept while a request is in flight."""

    path: str
    method: str
    headers: dict[str, str]
    received_at: float
    body: bytes = b""
    json: Any = None
    action: str | None = None
    status: int | None = None
    executed: bool = False
    fault: str | None = None
    replayed: bool = False
    latency: float = 0.0

    def freeze(self) -> RecordedRequest:
        return RecordedRequest(
            path=self.path,
            method=self.method,
            headers=dict(self.headers),
            body=self.body,
            json=self.json,
            action=self.action,
            status=self.status,
            executed=self.executed,
            fault=self.fault,
            replayed=self.replayed,
            latency=self.latency,
            received_at=self.received_at,
        )


@dataclass(frozen=True)
class Reply:
    """A scripted reply, consumed FIFO by the next request to any path.

    Args:
        status, body, headers: what to send (``Content-Type`` defaults to JSON, or HTML when
            the body starts with ``<``).
        execute: run the request normally first (auth included), then send this instead.
        stream_bytes: stream this many bytes, chunked with no Content-Length, starting with
            ``body`` (default ``{"success":true,"data":"``) and padded with ``x``; never
            held in memory at once.
        reset: abort the connection without any reply.

    Example:
        >>> server.push_reply(Reply(status=307, headers={"Location": "http://elsewhere/"}))
    """

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    execute: bool = False
    stream_bytes: int | None = None
    reset: bool = False

    def __post_init__(self) -> None:
        if self.stream_bytes is not None and self.stream_bytes < 0:
            raise ValueError(f"Reply.stream_bytes must be >= 0, got {self.stream_bytes!r}")
        if not 100 <= self.status <= 599:
            raise ValueError(f"Reply.status must be an HTTP status, got {self.status!r}")


def worst_window(times: Iterable[float], width: float = 1.0) -> int:
    """The most events in any half-open window ``[t, t + width)``: with the arrival times
    of a server's requests (``RecordedRequest.received_at``), the busiest rolling second.

    Example:
        assert worst_window(r.received_at for r in server.requests) <= 200
    """
    ordered = sorted(times)
    worst = start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - width:
            start += 1
        worst = max(worst, end - start + 1)
    return worst
