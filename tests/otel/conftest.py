"""Fixtures for the OpenTelemetry tests: a fake Sippet, and SDK providers that keep in memory
every span and metric point they are given."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sippet_async.otel import OpenTelemetryHooks
from sippet_async.testing import FakeSippet

from ._support import KEY


@dataclass
class Telemetry:
    """In-memory OpenTelemetry: spans as they end, metrics when read."""

    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def hooks(self) -> OpenTelemetryHooks:
        """Hooks that report to these providers (not the global ones)."""
        return OpenTelemetryHooks(tracer_provider=self.tracer_provider,
                                  meter_provider=self.meter_provider)


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """SDK tracer and meter providers with an in-memory span exporter and metric reader."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Telemetry(spans, reader, tracer_provider, meter_provider)
    tracer_provider.shutdown()
    meter_provider.shutdown()


@pytest.fixture
async def server() -> AsyncIterator[FakeSippet]:
    """A fake Sippet with a few contacts, on an ephemeral port."""
    async with FakeSippet(KEY, seed_contacts=5) as fake:
        yield fake
