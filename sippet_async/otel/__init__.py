"""OpenTelemetry spans and metrics for every call: ``pip install "sippet_async[otel]"``.

One line turns each call into a span and feeds two instruments, through the global tracer
and meter providers (or those given)::

    from sippet_async.otel import OpenTelemetryHooks

    client = SippetClient(hooks=OpenTelemetryHooks())

``import sippet_async`` never imports this package (nor opentelemetry): without the extra,
a client costs nothing more.
"""

try:
    import opentelemetry.trace as _trace  # noqa: F401 - only to name the extra when it is missing
except ImportError as _missing:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        'sippet_async.otel needs the [otel] extra: pip install "sippet_async[otel]"'
    ) from _missing

from sippet_async.otel._observer import OpenTelemetryHooks

__all__ = ["OpenTelemetryHooks"]
