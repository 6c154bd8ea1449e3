"""Helpers of the OpenTelemetry tests."""

from __future__ import annotations

import asyncio
from typing import Any, Final

from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData

KEY: Final = "sk_test_otel_suite_0123456789"


class FakeSleep:
    """Records every wait it is asked for and returns at once (after one loop turn)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


def points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    """The data points of metric ``name`` read now (cumulative)."""
    data: MetricsData | None = reader.get_metrics_data()
    assert data is not None
    return [point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics if metric.name == name
            for point in metric.data.data_points]
