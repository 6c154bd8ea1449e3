"""`sippet fake-server`: every fault has a described flag, bad values are refused, and a
server started with the flags really answers with those faults (over 127.0.0.1)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final

import aiohttp
import msgspec
import pytest

from sippet_async._cli import main
from sippet_async._cli._main import build_parser

KEY: Final = "sk_test_cli_faults_0123456789"
FAULT_FLAGS: Final = (
    "--p-500", "--p-503", "--p-429", "--p-reset-before", "--p-lost-after-commit",
    "--retry-after", "--latency", "--rate-limit", "--seed", "--honour-idempotency-key",
)
LIST_CALLS: Final = {"action": "list_calls", "fields": ["id"]}


def _fake_server_help(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(["fake-server", "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


def test_help_describes_every_fault_flag(capsys: pytest.CaptureFixture[str]) -> None:
    """Each fault flag is in --help, followed by a description of its own."""
    text = _fake_server_help(capsys)
    options = text[text.index("options:"):]
    for flag in FAULT_FLAGS:
        # "  --p-500 P    chance of ..." or the flag alone on its line, help on the next one
        entry = re.search(rf"^  {re.escape(flag)}\b[^\n]*\n?(?P<next>[^\n]*)", options, re.M)
        assert entry is not None, flag
        described = entry.group(0).split(flag, 1)[1]
        assert re.search(r"[a-z]{3,} [a-z]{2,}", described), (flag, described)


def test_every_fake_server_option_has_help() -> None:
    """No option of the subcommand is left without a help line."""
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    fake = sub.choices["fake-server"]  # type: ignore[index]
    undescribed = [a.option_strings for a in fake._actions if not a.help]
    assert undescribed == []


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--p-500", "1.5"], "--p-500"),
        (["--p-503", "nan"], "--p-503"),
        (["--p-429", "x"], "--p-429"),
        (["--retry-after=-1"], "--retry-after"),
        (["--latency=-0.5"], "--latency"),
        (["--rate-limit", "0"], "--rate-limit"),
        (["--port=-1"], "--port"),
    ],
)
def test_bad_flag_values_are_refused_by_name(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An out-of-range value exits 2 and the message names the flag."""
    with pytest.raises(SystemExit) as exc:
        main(["fake-server", "--api-key", KEY, *argv])
    assert exc.value.code == 2
    assert named in capsys.readouterr().err


def test_probabilities_adding_up_above_one_are_a_usage_error(
    capsys: pytest.CaptureFixture[str], run_cli: Callable[[list[str]], int]
) -> None:
    """The chances together may not exceed 1: exit 2 before anything listens."""
    code = run_cli(["fake-server", "--api-key", KEY, "--port", "0", "--p-500", "0.6",
                 "--p-503", "0.6"])
    assert code == 2
    err = capsys.readouterr().err
    assert "usage error" in err
    assert "listening" not in err


@asynccontextmanager
async def fake_server(*flags: str) -> AsyncIterator[str]:
    """Run `sippet fake-server --port 0 FLAGS` as a process; yield its URL; SIGTERM -> 0."""
    env = {**os.environ, "SIPPET_SECRET_KEY": ""}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sippet_async", "fake-server", "--api-key", KEY, "--port", "0",
        *flags, stderr=asyncio.subprocess.PIPE, env=env,
    )
    assert proc.stderr is not None
    try:
        url = None
        async with asyncio.timeout(60):
            # Under PYTHONDEVMODE asyncio's slow-callback reports may come first.
            while url is None:
                line = (await proc.stderr.readline()).decode()
                assert line, "the server exited before listening"
                found = re.search(r"listening on (http://\S+) ", line)
                url = found.group(1) if found else None
        yield url
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _post(
    session: aiohttp.ClientSession, url: str, payload: object, **headers: str
) -> tuple[int, dict[str, str], bytes] | None:
    """POST one RPC; the status, headers and body, or None when the connection dropped."""
    try:
        async with session.post(
            f"{url}/rpc/public/run", data=msgspec.json.encode(payload),
            headers={"Content-Type": "application/json", "x-api-key": KEY, **headers},
        ) as reply:
            return reply.status, dict(reply.headers), await reply.read()
    except aiohttp.ClientConnectionError:
        return None


@pytest.mark.slow
async def test_probability_flags_produce_their_faults() -> None:
    """--p-500/--p-503/--p-429/--p-reset-before each show up at about their rate, 503 and
    429 with --retry-after; the same --seed gives the same sequence."""
    flags = ("--p-500", "0.2", "--p-503", "0.2", "--p-429", "0.2", "--p-reset-before", "0.2",
             "--retry-after", "2.5", "--seed", "11")
    runs = []
    for _ in range(2):
        async with fake_server(*flags) as url, aiohttp.ClientSession() as session:
            answers = [await _post(session, url, LIST_CALLS) for _ in range(150)]
        runs.append([None if a is None else a[0] for a in answers])
        counts = Counter(runs[-1])
        assert set(counts) == {200, 500, 503, 429, None}
        for outcome in (200, 500, 503, 429, None):
            assert 12 <= counts[outcome] <= 55, counts  # 30 expected of each
        waits = {a[1].get("Retry-After") for a in answers if a is not None and a[0] in (503, 429)}
        assert waits == {"2.5"}
    assert runs[0] == runs[1]


@pytest.mark.slow
async def test_lost_after_commit_runs_the_action_then_drops_the_reply() -> None:
    """--p-lost-after-commit 1 with --only-action: the create is stored, its reply lost;
    other actions are not faulted."""
    create = {"action": "create_contact", "fields": ["id"],
              "input": {"fullName": "Ada", "phoneE164": "+15555550100"}}
    async with fake_server("--p-lost-after-commit", "1", "--only-action", "create_contact") \
            as url, aiohttp.ClientSession() as session:
        assert await _post(session, url, create) is None
        listed = await _post(session, url, {"action": "list_contacts", "fields": ["fullName"]})
    assert listed is not None
    assert listed[0] == 200
    assert [c["fullName"] for c in msgspec.json.decode(listed[2])["data"]["results"]] == ["Ada"]


@pytest.mark.slow
async def test_rate_limit_flags_admit_n_per_second() -> None:
    """--rate-limit 5 --rate-limit-headers: of 20 requests at once, 5 pass and 15 get 429."""
    async with fake_server("--rate-limit", "5", "--rate-limit-headers") as url, \
            aiohttp.ClientSession() as session:
        answers = await asyncio.gather(*(_post(session, url, LIST_CALLS) for _ in range(20)))
    statuses = Counter(a[0] for a in answers if a is not None)
    assert statuses == {200: 5, 429: 15}
    limited = [a[1] for a in answers if a is not None and a[0] == 429]
    assert all(h["RateLimit-Limit"] == "5" and "Retry-After" in h for h in limited)


@pytest.mark.slow
async def test_latency_and_idempotency_key_flags() -> None:
    """--latency delays each RPC; --honour-idempotency-key replays a repeated key."""
    create = {"action": "create_contact", "fields": ["id"],
              "input": {"fullName": "Bo", "phoneE164": "+15555550101"}}
    async with fake_server("--latency", "0.3", "--honour-idempotency-key") as url, \
            aiohttp.ClientSession() as session:
        started = time.monotonic()
        first = await _post(session, url, create, **{"Idempotency-Key": "k-1"})
        assert time.monotonic() - started >= 0.3
        again = await _post(session, url, create, **{"Idempotency-Key": "k-1"})
        listed = await _post(session, url, {"action": "list_contacts", "fields": ["id"]})
    assert first is not None
    assert again is not None
    assert listed is not None
    assert (first[0], again[0]) == (200, 200)
    assert again[2] == first[2]
    assert len(msgspec.json.decode(listed[2])["data"]["results"]) == 1
