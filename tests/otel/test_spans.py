"""OpenTelemetryHooks: one span per call, with the RPC and HTTP attributes, retry and pause
events, the outcome, and metrics; concurrent calls kept apart; never the key."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from urllib.parse import urlsplit

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from sippet_async import (
    ActionNotFoundError,
    RetryPolicy,
    ServerError,
    SippetClient,
)
from sippet_async.testing import FakeSippet, Faults, Reply

from ._support import KEY, FakeSleep, points
from .conftest import Telemetry


def _client(server: FakeSippet, telemetry: Telemetry, sleep: FakeSleep | None = None,
            **options: object) -> SippetClient:
    return SippetClient(KEY, base_url=server.url, retry=RetryPolicy(sleep=sleep or FakeSleep()),
                        hooks=telemetry.hooks(), **options)  # type: ignore[arg-type]


async def test_a_call_is_one_client_span_with_rpc_and_http_attributes(
    server: FakeSippet, telemetry: Telemetry
) -> None:
    """sippet/<action>, kind CLIENT, rpc.* and server.*, the status, one attempt, ok."""
    async with _client(server, telemetry) as client:
        await client.run("list_contacts", fields=["id"])
    (span,) = telemetry.spans.get_finished_spans()
    assert span.name == "sippet/list_contacts"
    assert span.kind is SpanKind.CLIENT
    assert span.parent is None
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {}) == {
        "rpc.system": "sippet",
        "rpc.system.name": "sippet",
        "rpc.method": "list_contacts",
        "server.address": "127.0.0.1",
        "server.port": urlsplit(server.url).port,
        "sippet.endpoint": "run",
        "http.response.status_code": 200,
        "sippet.attempts": 1,
        "sippet.outcome": "ok",
    }
    assert span.events == ()


async def test_retries_and_pauses_are_events_of_the_span(
    server: FakeSippet, telemetry: Telemetry
) -> None:
    """A 503 with Retry-After: a pause and a retry event (cause, wait, attempt); 2 attempts."""
    server.push_reply(Reply(status=503, headers={"Retry-After": "1.5"}))
    async with _client(server, telemetry) as client:
        await client.run("list_contacts", fields=["id"])
    (span,) = telemetry.spans.get_finished_spans()
    events = [(event.name, dict(event.attributes or {})) for event in span.events]
    assert events == [
        ("sippet.pause", {"sippet.attempt": 1, "sippet.pause.cause": "503",
                          "sippet.pause.wait": 1.5}),
        ("sippet.retry", {"sippet.attempt": 1, "sippet.retry.cause": "503",
                          "sippet.retry.wait": 1.5}),
    ]
    attributes = span.attributes or {}
    assert attributes["sippet.attempts"] == 2
    assert attributes["http.response.status_code"] == 200
    assert attributes["sippet.outcome"] == "ok"


async def test_a_failed_call_is_an_error_span_with_its_error_type(
    server: FakeSippet, telemetry: Telemetry
) -> None:
    """Status ERROR, error.type the public exception name, the exception recorded."""
    async with _client(server, telemetry) as client:
        with pytest.raises(ActionNotFoundError):
            await client.run("no_such_action")
    (span,) = telemetry.spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    attributes = span.attributes or {}
    assert attributes["error.type"] == "sippet_async.ActionNotFoundError"
    assert attributes["sippet.outcome"] == "error"
    assert attributes["rpc.method"] == "no_such_action"
    assert [event.name for event in span.events] == ["exception"]


async def test_retries_that_run_out_end_in_an_error_span_with_the_last_status(
    server: FakeSippet, telemetry: Telemetry
) -> None:
    """Three 500s: three attempts, two retry events, the last status 500, ServerError."""
    for _ in range(3):
        server.push_reply(Reply(status=500))
    async with SippetClient(KEY, base_url=server.url, hooks=telemetry.hooks(),
                            retry=RetryPolicy(attempts=3, sleep=FakeSleep())) as client:
        with pytest.raises(ServerError):
            await client.run("list_contacts", fields=["id"])
    (span,) = telemetry.spans.get_finished_spans()
    attributes = span.attributes or {}
    assert attributes["sippet.attempts"] == 3
    assert attributes["http.response.status_code"] == 500
    assert attributes["error.type"] == "sippet_async.ServerError"
    assert [e.name for e in span.events] == ["sippet.retry", "sippet.retry", "exception"]


async def test_a_cancelled_call_ends_its_span_without_an_error(
    server: FakeSippet, telemetry: Telemetry
) -> None:
    """The caller's cancellation is not a failure: outcome cancelled, status unset."""
    server.latency = 5.0
    async with _client(server, telemetry) as client:
        task = asyncio.create_task(client.run("list_contacts", fields=["id"]))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    (span,) = telemetry.spans.get_finished_spans()
    assert span.status.status_code is StatusCode.UNSET
    assert (span.attributes or {})["sippet.outcome"] == "cancelled"
    assert "error.type" not in (span.attributes or {})


async def test_concurrent_calls_each_get_their_own_span_and_events(
    server: FakeSippet, telemetry: Telemetry
) -> None:
    """Calls in flight together: every span is a root with only its own call's events."""
    server.latency = 0.02  # every call overlaps the others
    server.faults = Faults(p_503=1.0, retry_after=0.0, only_actions={"list_calls"})
    async with SippetClient(KEY, base_url=server.url, hooks=telemetry.hooks(),
                            retry=RetryPolicy(attempts=3, sleep=FakeSleep())) as client:
        calls = [client.run("list_contacts", fields=["id"]) for _ in range(10)]
        calls += [client.run("list_calls", fields=["id"]) for _ in range(5)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        retries = client.counters.total_retries
    assert sum(isinstance(r, ServerError) for r in results) == 5
    spans = telemetry.spans.get_finished_spans()
    assert len(spans) == 15
    assert all(span.parent is None for span in spans)  # no call's context leaked
    by_method: dict[str, list[int]] = {}
    for span in spans:
        attributes = span.attributes or {}
        assert span.name == f"sippet/{attributes['rpc.method']}"
        events = [e for e in span.events if e.name == "sippet.retry"]
        assert attributes["sippet.attempts"] == len(events) + 1
        by_method.setdefault(str(attributes["rpc.method"]), []).append(len(events))
    assert by_method["list_contacts"] == [0] * 10
    assert by_method["list_calls"] == [2] * 5
    assert retries == 10
    ok = [s for s in spans if (s.attributes or {})["sippet.outcome"] == "ok"]
    starts, ends = [s.start_time or 0 for s in ok], [s.end_time or 0 for s in ok]
    assert max(starts) < min(ends)  # they really were in flight at once


async def test_a_call_in_a_span_of_the_caller_is_its_child(
    server: FakeSippet, telemetry: Telemetry
) -> None:
    """The call's span nests under the caller's current span."""
    tracer = telemetry.tracer_provider.get_tracer("test")
    async with _client(server, telemetry) as client:
        with tracer.start_as_current_span("import") as parent:
            await client.run("list_contacts", fields=["id"])
            await client.run("list_contacts", fields=["id"])
    calls = [s for s in telemetry.spans.get_finished_spans() if s.name != "import"]
    assert len(calls) == 2
    assert all(s.parent is not None and s.parent.span_id == parent.get_span_context().span_id
               for s in calls)


async def test_iter_and_validate_calls_are_spans_too(
    server: FakeSippet, telemetry: Telemetry
) -> None:
    """A page of iter is a call; validate's span names its endpoint."""
    async with _client(server, telemetry) as client:
        records = [r async for r in client.iter("list_contacts", fields=["id"], page_size=2)]
        await client.validate("create_contact", input={"fullName": "Ada"})
    assert len(records) == 5
    spans = telemetry.spans.get_finished_spans()
    endpoints = [(s.name, (s.attributes or {})["sippet.endpoint"]) for s in spans]
    assert endpoints[-1] == ("sippet/create_contact", "validate")
    assert set(endpoints[:-1]) == {("sippet/list_contacts", "run")}
    assert len(endpoints) >= 4  # 5 records, 2 a page


async def test_each_item_of_a_bulk_job_is_a_span_of_its_own(
    server: FakeSippet, telemetry: Telemetry
) -> None:
    """Items run concurrently on the job's workers: one root span per item, each ok."""
    server.latency = 0.01
    rows = [{"fullName": f"Person {i}", "phoneE164": f"+1555555{i:04d}"} for i in range(8)]
    async with (_client(server, telemetry) as client,
                client.bulk("create_contact", rows, fields=["id"], concurrency=4) as job):
        outcomes = [outcome async for outcome in job]
    assert [o.status for o in outcomes] == ["succeeded"] * 8
    spans = telemetry.spans.get_finished_spans()
    assert [s.name for s in spans] == ["sippet/create_contact"] * 8
    assert all(s.parent is None for s in spans)
    assert {(s.attributes or {})["sippet.outcome"] for s in spans} == {"ok"}


async def test_duration_and_outcome_metrics(server: FakeSippet, telemetry: Telemetry) -> None:
    """rpc.client.call.duration (s) and sippet.client.calls, by method, outcome and status."""
    async with _client(server, telemetry) as client:
        await client.run("list_contacts", fields=["id"])
        await client.run("list_contacts", fields=["id"])
        with pytest.raises(ActionNotFoundError):
            await client.run("no_such_action")
    counts = {(p.attributes["rpc.method"], p.attributes["sippet.outcome"],
               p.attributes.get("error.type")): p.value
              for p in points(telemetry.metrics, "sippet.client.calls")}
    assert counts == {("list_contacts", "ok", None): 2,
                      ("no_such_action", "error", "sippet_async.ActionNotFoundError"): 1}
    histogram = {p.attributes["rpc.method"]: p
                 for p in points(telemetry.metrics, "rpc.client.call.duration")}
    assert histogram["list_contacts"].count == 2
    assert histogram["list_contacts"].attributes["http.response.status_code"] == 200
    assert 0 < histogram["list_contacts"].sum < 5  # seconds, not milliseconds
    assert histogram["list_contacts"].explicit_bounds[0] == 0.005


async def test_the_key_appears_in_no_span_event_or_metric(
    server: FakeSippet, telemetry: Telemetry
) -> None:
    """Successes, retries, pauses, failures: nothing exported contains the secret key."""
    server.push_reply(Reply(status=429, headers={"Retry-After": "1"}))
    async with _client(server, telemetry) as client:
        await client.run("list_contacts", fields=["id"])
        server.push_reply(Reply(status=401))
        with pytest.raises(Exception):  # noqa: B017, PT011 - any error, it is the text we read
            await client.run("list_contacts", fields=["id"])
        with pytest.raises(ActionNotFoundError):
            await client.run("no_such_action", input={"note": "hello"})
        await client.validate("create_contact", input={"fullName": "Ada"})
    spans = telemetry.spans.get_finished_spans()
    assert len(spans) == 4
    exported = "".join(span.to_json() for span in spans)
    data = telemetry.metrics.get_metrics_data()
    assert data is not None
    exported += data.to_json()
    assert "sippet.pause" in exported
    assert "sippet_async.AuthenticationError" in exported
    assert KEY not in exported
    assert KEY[-8:] not in exported


_GLOBAL = textwrap.dedent("""
    import asyncio, json, sys
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from sippet_async import SippetClient
    from sippet_async.otel import OpenTelemetryHooks
    from sippet_async.testing import FakeSippet

    hooks = OpenTelemetryHooks()  # built before the providers are set: it still finds them
    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

    async def main():
        async with FakeSippet(sys.argv[1]) as server:
            async with SippetClient(sys.argv[1], base_url=server.url, hooks=hooks) as client:
                await client.run("list_contacts", fields=["id"])

    asyncio.run(main())
    names = [m.name for r in reader.get_metrics_data().resource_metrics
             for s in r.scope_metrics for m in s.metrics]
    print(json.dumps({"spans": [s.name for s in exporter.get_finished_spans()],
                      "metrics": sorted(names)}))
""")


@pytest.mark.slow
def test_by_default_the_global_providers_are_used() -> None:
    """OpenTelemetryHooks() reports to the global tracer and meter providers (a fresh
    interpreter: the global providers can be set only once)."""
    done = subprocess.run([sys.executable, "-c", _GLOBAL, KEY], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "spans": ["sippet/list_contacts"],
        "metrics": ["rpc.client.call.duration", "sippet.client.calls"],
    }
