"""Oversized replies are refused without buffering them (max_response_bytes)."""

from __future__ import annotations

import asyncio
import gzip
import json
import sys
from typing import Final

import pytest

from sippet_async import ResponseTooLargeError, SippetClient
from sippet_async._config import DEFAULT_MAX_RESPONSE_BYTES
from sippet_async.testing import FakeSippet, Reply

MB = 1024 * 1024
HUGE = 100 * MB
RSS_LIMIT_MB = 20

# Run in a process of its own, so no other test's memory moves the figures: warm a client
# with the default cap up, reset the peak-RSS mark, take a 100 MB chunked reply, and print
# the peak's growth over the RSS before it (Linux /proc; ru_maxrss elsewhere).
_MEASURE: Final = r"""
import asyncio, json, resource, sys
from pathlib import Path
from sippet_async import ResponseTooLargeError, SippetClient

def kib(field):
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None

def peak():
    return kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

async def main(url, key):
    async with SippetClient(key, base_url=url) as client:
        await client.run("list_contacts", fields=["id"])  # warm up: session, pool, decoders
        try:
            Path("/proc/self/clear_refs").write_text("5")  # the peak restarts from now
            baseline = kib("VmRSS")
        except OSError:
            baseline = peak()  # the old peak never goes down: growth is over it
        try:
            await client.run("list_contacts", fields=["id"])  # the server streams 100 MB
            refused = None
        except ResponseTooLargeError as exc:
            refused = str(exc)
    print(json.dumps({"growth_kib": peak() - baseline, "refused": refused}))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.mark.slow
async def test_endless_chunked_reply_is_refused_within_20_mb_of_rss(
    server: FakeSippet, api_key: str
) -> None:
    """With the default cap, a 100 MB chunked reply is refused and RSS grows < 20 MB."""
    server.push_reply(Reply(status=200, body=b'{"success":true,"data":[]}'))  # the warm-up
    server.push_reply(Reply(status=200, stream_bytes=HUGE))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _MEASURE, server.url, api_key,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()
    figures = json.loads(out)
    growth_mb = figures["growth_kib"] / 1024
    print(f"RSS growth while refusing a {HUGE // MB} MB chunked reply: {growth_mb:.1f} MB "
          f"(cap {DEFAULT_MAX_RESPONSE_BYTES // MB} MiB)")
    assert figures["refused"] is not None, "the 100 MB reply was accepted"
    assert str(DEFAULT_MAX_RESPONSE_BYTES) in figures["refused"]
    assert growth_mb < RSS_LIMIT_MB


async def test_a_compressed_reply_is_capped_by_its_decoded_size(
    server: FakeSippet, api_key: str
) -> None:
    """A gzip reply whose Content-Length fits the cap but whose content does not is refused
    (a 2 KB gzip body can decode to megabytes)."""
    content = b'{"success": true, "data": "' + b"x" * (2 * MB) + b'"}'
    packed = gzip.compress(content)
    assert len(packed) < 64 * 1024
    async with SippetClient(api_key, base_url=server.url, max_response_bytes=1 * MB) as client:
        server.push_reply(Reply(status=200, body=packed, headers={
            "Content-Encoding": "gzip", "Content-Type": "application/json"}))
        with pytest.raises(ResponseTooLargeError):
            await client.run("list_contacts", fields=["id"])
        small = gzip.compress(b'{"success": true, "data": "' + b"y" * 1000 + b'"}')
        server.push_reply(Reply(status=200, body=small, headers={
            "Content-Encoding": "gzip", "Content-Type": "application/json"}))
        assert await client.run("list_contacts", fields=["id"]) == "y" * 1000


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
