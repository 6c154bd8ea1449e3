"""`sippet enqueue` and `sippet worker`: dedupe by job id, one action per stream, the
[redis] extra named when missing, a worker stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from sippet_async.testing import FakeSippet

from ._support import KEY, dials, poll_until

ROWS = "orderId,toE164\no1,+15550000001\no2,+15550000002\no3,+15550000003\no2,+15550000002\n"



def test_enqueue_twice_queues_each_job_once(
    tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str],
    run_cli: Callable[[list[str]], int],
) -> None:
    """The job id column dedupes rows and reruns; the column itself is not sent."""
    rows = tmp_path / "calls.csv"
    rows.write_text(ROWS)
    argv = ["enqueue", "create_call", str(rows), "--redis", redis_url, "--stream", "s",
            "--job-id-column", "orderId"]
    assert run_cli(argv) == 0
    assert "enqueued 3 new create_call jobs on s (4 rows: 1 already queued" \
        in capsys.readouterr().out
    assert run_cli(argv) == 0
    assert "enqueued 0 new" in capsys.readouterr().out
    with redis.Redis.from_url(redis_url) as r:
        assert r.xlen("s") == 3
        assert b"orderId" not in r.xrange("s")[0][1][b"item"]


def test_a_stream_holds_one_action(
    tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str],
    run_cli: Callable[[list[str]], int],
) -> None:
    """Enqueueing another action on a stream is a usage error (exit 2)."""
    rows = tmp_path / "calls.csv"
    rows.write_text(ROWS)
    assert run_cli(["enqueue", "create_call", str(rows), "--redis", redis_url]) == 0
    assert run_cli(["enqueue", "create_contact", str(rows), "--redis", redis_url]) == 2
    assert "holds create_call jobs" in capsys.readouterr().err


def test_without_the_extra_the_error_names_it() -> None:
    """No redis installed: exit 2 and the message says which extra to install."""
    code = ("import sys; sys.modules['redis'] = None\n"
            "from sippet_async._cli._main import main\n"
            "sys.exit(main(['worker', '--redis', 'redis://127.0.0.1:1/0']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2
    assert 'pip install "sippet_async[redis]"' in done.stderr


@pytest.mark.slow  # a worker process
async def test_worker_stops_gracefully_on_sigterm(tmp_path: Path, redis_url: str) -> None:
    """SIGTERM: in-flight calls finish and are recorded, the rest stays queued, exit 0
    with a summary of outcomes."""
    rows = tmp_path / "calls.jsonl"
    rows.write_text("".join(f'{{"toE164": "+1555{i:07d}"}}\n' for i in range(300)))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDEVMODE"}
    env["SIPPET_SECRET_KEY"] = KEY
    async with FakeSippet(KEY, latency=0.05) as server:
        enqueue = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sippet_async", "enqueue", "create_call", str(rows),
            "--redis", redis_url, env=env)
        assert await enqueue.wait() == 0
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sippet_async", "worker", "--redis", redis_url,
            "--base-url", server.url, "--concurrency", "4", "--reconcile-by", "toE164",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        await poll_until(lambda: len(server.calls) >= 20, within=60)
        worker.send_signal(signal.SIGTERM)
        out, err = await worker.communicate()
    assert worker.returncode == 0, err.decode()
    assert " jobs: " in out.decode()
    assert "succeeded" in out.decode()
    done = int(out.decode().split(": ")[1].split()[0])
    assert 20 <= done < 300
    assert len(server.calls) == done  # every call placed was finished and reported
    assert max(dials(server).values()) == 1
    with redis.Redis.from_url(redis_url) as r:
        finished = sum(r.hget(f"sippet:calls:job:{k.decode().rsplit(':', 1)[1]}", "state")
                       == b"done" for k in r.scan_iter("sippet:calls:job:*"))
    assert finished == done  # the rest stays queued for another worker


@pytest.mark.slow  # worker processes
def test_demo_fleet_checks_out() -> None:
    """`sippet demo --fleet`: a killed worker, every check against the server holds (the
    shared limit among them)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDEVMODE"}
    done = subprocess.run([sys.executable, "-m", "sippet_async", "demo", "--fleet"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SIGKILLed worker 1" in done.stdout
    assert done.stdout.count("  ok: ") == 5
    assert "sk_test" not in done.stdout


@pytest.mark.slow  # a worker process
async def test_worker_rate_key_shares_the_limit_through_redis(
    tmp_path: Path, redis_url: str
) -> None:
    """--rate R --rate-key K: the worker paces through RedisRateLimit under key K (its
    successes are counted in K's shared state, and its requests are R per second)."""
    rows = tmp_path / "calls.jsonl"
    rows.write_text("".join(f'{{"toE164": "+1555{i:07d}"}}\n' for i in range(100)))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDEVMODE"}
    env["SIPPET_SECRET_KEY"] = KEY
    async with FakeSippet(KEY) as server:
        enqueue = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sippet_async", "enqueue", "create_call", str(rows),
            "--redis", redis_url, env=env)
        assert await enqueue.wait() == 0
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sippet_async", "worker", "--redis", redis_url,
            "--base-url", server.url, "--rate", "20", "--rate-key", "acct-1",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        await poll_until(lambda: len(server.calls) >= 5, within=60)
        worker.send_signal(signal.SIGTERM)
        _, err = await worker.communicate()
        times = [request.received_at for request in server.requests]
    assert worker.returncode == 0, err.decode()
    with redis.Redis.from_url(redis_url) as r:
        assert r.hget("sippet:ratelimit:{acct-1}", "first") is not None
    # Slots 1.015 / 20 s apart; a wake-up may be up to ``late`` (10 ms) behind its slot.
    assert times[-1] - times[0] >= (len(times) - 1) * 1.015 / 20 - 0.010


@pytest.mark.slow  # a worker process
async def test_worker_ctrl_c_prints_the_summary_and_exits_130(
    tmp_path: Path, redis_url: str
) -> None:
    """Ctrl-C: in-flight calls finish, the summary and where the rest is are printed,
    exit 130; no call placed twice."""
    rows = tmp_path / "calls.jsonl"
    rows.write_text("".join(f'{{"toE164": "+1555{i:07d}"}}\n' for i in range(300)))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDEVMODE"}
    env["SIPPET_SECRET_KEY"] = KEY
    async with FakeSippet(KEY, latency=0.05) as server:
        enqueue = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sippet_async", "enqueue", "create_call", str(rows),
            "--redis", redis_url, env=env)
        assert await enqueue.wait() == 0
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sippet_async", "worker", "--redis", redis_url,
            "--base-url", server.url, "--concurrency", "4", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        await poll_until(lambda: len(server.calls) >= 20, within=60)
        worker.send_signal(signal.SIGINT)
        out, err = await worker.communicate()
    assert worker.returncode == 130, err.decode()
    assert "Traceback" not in err.decode()
    assert " jobs: " in out.decode()
    assert "INTERRUPTED (Ctrl-C)" in err.decode()
    assert "jobs not taken stay queued" in err.decode()
    done = int(out.decode().split(": ")[1].split()[0])
    assert len(server.calls) == done  # every call placed was finished and reported
    assert max(dials(server).values()) == 1
