"""``OpenTelemetryHooks``: an ``Observer`` that turns each call into a span and two metrics.

The span opens in ``on_call_start`` and is made current (so spans of an instrumented HTTP
library nest under it); the attempt events that follow come from the same task, so they
find it in the OpenTelemetry context, and concurrent calls never see each other's span.
Only actions, URLs' host and port, statuses, causes and waits are recorded: the events
carry no key and no headers.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache
from typing import Any, Final
from urllib.parse import urlsplit

from opentelemetry import context, metrics, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from sippet_async._hooks import (
    BreakerEvent,
    CallEndEvent,
    CallStartEvent,
    Observer,
    PauseEvent,
    ResponseEvent,
    RetryEvent,
)
from sippet_async._version import __version__

__all__ = ["OpenTelemetryHooks"]

SCOPE: Final = "sippet_async"
SYSTEM: Final = "sippet"  # rpc.system(.name): not one of the convention's listed systems

# Attribute names of the OpenTelemetry semantic conventions (RPC and HTTP clients). Both the
# RPC conventions' current ``rpc.system.name`` and the older ``rpc.system`` are set: tools
# built on either find the calls.
RPC_SYSTEM: Final = "rpc.system"
RPC_SYSTEM_NAME: Final = "rpc.system.name"
RPC_METHOD: Final = "rpc.method"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
HTTP_STATUS: Final = "http.response.status_code"
ERROR_TYPE: Final = "error.type"
# Ours, where the conventions have nothing.
ENDPOINT: Final = "sippet.endpoint"
ATTEMPTS: Final = "sippet.attempts"
OUTCOME: Final = "sippet.outcome"

DURATION_METRIC: Final = "rpc.client.call.duration"
CALLS_METRIC: Final = "sippet.client.calls"
# The semantic conventions' advice for duration histograms in seconds.
DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                           5.0, 7.5, 10.0)

_CALL: Final = context.create_key("sippet_async.call")


class _Open:
    """One call in progress: its span, what it has heard so far, and how to leave it."""

    __slots__ = ("attributes", "span", "status", "token")

    def __init__(self, span: Span, attributes: dict[str, AttributeValue]) -> None:
        self.span = span
        self.attributes = attributes  # the low-cardinality ones the metrics share
        self.status = 0  # the last HTTP status heard (0: none yet)
        # Token[Context], set once the call's context is attached; Any because
        # older opentelemetry-api (1.30, the floor) types it ``object``.
        self.token: Any = None


class OpenTelemetryHooks(Observer):
    """Each call a span, and its duration and outcome as metrics (OpenTelemetry).

    A ``CLIENT`` span named ``sippet/<action>`` per call (``run``, ``validate``, each page
    of ``iter``, each item of ``bulk``), with the RPC and HTTP client attributes of the
    semantic conventions (``rpc.system``, ``rpc.system.name``, ``rpc.method``,
    ``server.address``, ``server.port``, ``http.response.status_code``, ``error.type``)
    and ``sippet.attempts``, ``sippet.outcome`` (``"ok"``, ``"error"``, ``"cancelled"``),
    ``sippet.endpoint``; an event per retry (``sippet.retry``), per shared pause
    (``sippet.pause``) and per breaker change (``sippet.breaker``). A failed call's span
    has status ERROR and records the exception; a cancelled one ends with status unset.

    Metrics: ``rpc.client.call.duration`` (histogram, seconds) and ``sippet.client.calls``
    (counter), both with the span's low-cardinality attributes.

    Args:
        tracer_provider: default: the global one (``opentelemetry.trace``), looked up
            when each span starts, so it may be set after the client is built.
        meter_provider: default: the global one (``opentelemetry.metrics``).

    Example:
        from sippet_async.otel import OpenTelemetryHooks

        client = SippetClient(hooks=OpenTelemetryHooks())
    """

    __slots__ = ("_calls", "_duration", "_tracer")

    def __init__(self, *, tracer_provider: trace.TracerProvider | None = None,
                 meter_provider: metrics.MeterProvider | None = None) -> None:
        self._tracer: Final = trace.get_tracer(SCOPE, __version__,
                                               tracer_provider=tracer_provider)
        meter = metrics.get_meter(SCOPE, __version__, meter_provider=meter_provider)
        self._duration: Final = meter.create_histogram(
            DURATION_METRIC, unit="s", description="Duration of Sippet calls, retries and "
            "waits included", explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
        self._calls: Final = meter.create_counter(
            CALLS_METRIC, unit="{call}", description="Sippet calls, by outcome")

    def on_call_start(self, event: CallStartEvent) -> None:
        """Open the call's span and make it current for the rest of the call."""
        address, port, endpoint = _server(event.url)
        attributes: dict[str, AttributeValue] = {
            RPC_SYSTEM: SYSTEM, RPC_SYSTEM_NAME: SYSTEM, RPC_METHOD: event.action,
            SERVER_ADDRESS: address, SERVER_PORT: port,
        }
        span = self._tracer.start_span(f"{SYSTEM}/{event.action}", kind=SpanKind.CLIENT,
                                       attributes={**attributes, ENDPOINT: endpoint})
        call = _Open(span, attributes)
        call.token = context.attach(context.set_value(_CALL, call,
                                                      trace.set_span_in_context(span)))

    def on_response(self, event: ResponseEvent) -> None:
        call = _current()
        if call is not None:
            call.status = event.status

    def on_retry(self, event: RetryEvent) -> None:
        call = _current()
        if call is not None:
            call.span.add_event("sippet.retry", {
                "sippet.attempt": event.attempt, "sippet.retry.cause": event.cause,
                "sippet.retry.wait": event.wait})

    def on_pause(self, event: PauseEvent) -> None:
        call = _current()
        if call is not None:
            call.span.add_event("sippet.pause", {
                "sippet.attempt": event.attempt, "sippet.pause.cause": event.cause,
                "sippet.pause.wait": event.wait})

    def on_breaker(self, event: BreakerEvent) -> None:
        call = _current()  # the call whose attempt moved the client's breaker
        if call is not None:
            call.span.add_event("sippet.breaker", {
                "sippet.breaker.state": event.state, "sippet.breaker.wait": event.wait})

    def on_call_end(self, event: CallEndEvent) -> None:
        """Close the call's span with its outcome; record the metrics."""
        call = _current()
        if call is None:  # no span of ours is current here: nothing to end
            return
        try:
            span, error = call.span, event.error
            ended: dict[str, AttributeValue] = {}  # what the span does not have yet
            if call.status:
                ended[HTTP_STATUS] = call.status
            if error is None:
                ended[OUTCOME] = "ok"
            elif isinstance(error, asyncio.CancelledError):
                ended[OUTCOME] = "cancelled"  # the caller's choice, not a failure
            else:
                ended[OUTCOME] = "error"
                ended[ERROR_TYPE] = _error_type(error)
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            attributes = {**call.attributes, **ended}
            ended[ATTEMPTS] = event.attempts  # not a metric attribute: unbounded
            span.set_attributes(ended)
            span.end()
            self._duration.record(event.duration, attributes)
            self._calls.add(1, attributes)
        finally:
            if call.token is not None:
                context.detach(call.token)


def _current() -> _Open | None:
    call = context.get_value(_CALL)
    return call if isinstance(call, _Open) else None


@lru_cache(maxsize=64)
def _server(url: str) -> tuple[str, int, str]:
    """``server.address``, ``server.port`` and the endpoint (``run``, ``validate``) of a
    request URL (a client has one or two; parsed once)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "", port, parts.path.rpartition("/")[2]


def _error_type(error: BaseException) -> str:
    """The exception's fully qualified class name, by its public module:
    ``sippet_async.RateLimitError``, not ``sippet_async._errors.RateLimitError``."""
    cls = type(error)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    public = []
    for part in cls.__module__.split("."):
        if part.startswith("_"):
            break
        public.append(part)
    return ".".join((*public, cls.__qualname__))
