"""Oversized replies are refused without buffering them (max_response_bytes)."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from sippet_async import ResponseTooLargeError, SippetClient
from sippet_async.testing import FakeSippet, Reply

MB = 1024 * 1024
CAP = 8 * MB
HUGE = 100 * MB
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _kib(field: str) -> int | None:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status, in KiB (None off Linux)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the peak-RSS mark (Linux: write 5 to clear_refs) so it measures only what follows."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _peak_kib() -> int:
    hwm = _kib("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def test_streamed_100mb_reply_is_refused_with_bounded_memory(
    server: FakeSippet, api_key: str
) -> None:
    """A 100 MB body with no Content-Length is cut off at the cap; RSS grows < 50 MB."""
    async with SippetClient(api_key, base_url=server.url,
                            max_response_bytes=CAP) as client:
        await client.run("list_contacts", fields=["id"])  # warm up: session, pool, decoders
        # Baseline: the current RSS when the peak mark can be reset, else the old peak
        # (ru_maxrss never goes down, so growth is then measured against the prior peak).
        baseline = _kib("VmRSS") if _reset_peak() else None
        if baseline is None:
            baseline = _peak_kib()
        server.push_reply(Reply(status=200, stream_bytes=HUGE))
        with pytest.raises(ResponseTooLargeError) as info:
            await client.run("list_contacts", fields=["id"])
        growth_mb = (_peak_kib() - baseline) / 1024
    assert info.value.status == 200
    assert str(CAP) in str(info.value)
    assert growth_mb < 50, f"RSS grew by {growth_mb:.1f} MB while refusing a 100 MB reply"


async def test_declared_oversize_is_refused_from_the_header(
    server: FakeSippet, api_key: str
) -> None:
    """A Content-Length above the cap is refused before the body is read (the error names it)."""
    size = 3 * MB
    async with SippetClient(api_key, base_url=server.url,
                            max_response_bytes=1 * MB) as client:
        server.push_reply(Reply(status=200, body=b" " * size))
        with pytest.raises(ResponseTooLargeError) as info:
            await client.run("list_contacts", fields=["id"])
        # Only the Content-Length path knows the full size: the streaming path stops at the cap.
        assert f"{size} bytes" in str(info.value)
        # The refused connection is dropped, not returned half-read to the pool.
        data = await client.run("list_contacts", fields=["id"], page={"limit": 1, "offset": 0})
        assert len(data["results"]) == 1


async def test_reply_exactly_at_cap_is_accepted(server: FakeSippet, api_key: str) -> None:
    """The cap is inclusive: a reply of exactly max_response_bytes is read."""
    cap = 64 * 1024
    prefix = b'{"success": true, "data": "'
    suffix = b'"}'
    body = prefix + b"x" * (cap - len(prefix) - len(suffix)) + suffix
    async with SippetClient(api_key, base_url=server.url,
                            max_response_bytes=cap) as client:
        server.push_reply(Reply(status=200, body=body))
        data = await client.run("list_contacts", fields=["id"])
        assert len(data) == cap - len(prefix) - len(suffix)
        server.push_reply(Reply(status=200, body=body[:-2] + b'x"}'))
        with pytest.raises(ResponseTooLargeError):
            await client.run("list_contacts", fields=["id"])
