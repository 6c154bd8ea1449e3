"""The ``sippet`` command against the fake server: run, validate, fake-server, demo."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable

import msgspec
import pytest

from sippet_async._cli import main
from sippet_async.testing import FakeSippet

KEY = "sk_test_cli_0123456789abcdef"


@pytest.fixture
async def server() -> AsyncIterator[FakeSippet]:
    async with FakeSippet(api_key=KEY, seed_contacts=5) as fake:
        yield fake


async def sippet(*argv: str) -> int:
    """Run the CLI in a thread: ``main`` owns its own event loop, as in a shell."""
    return await asyncio.to_thread(main, list(argv))


async def test_run_prints_data_and_sends_every_option(
    server: FakeSippet, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sippet run` sends the options as docs/protocol.md keys and prints `data` as JSON."""
    code = await sippet(
        "run", "list_contacts", "--api-key", KEY, "--base-url", server.url,
        "--fields", "id,phoneE164", "--sort", "-phoneE164",
        "--filter", '{"company": {"notEq": "nobody"}}', "--page", '{"limit": 2, "offset": 0}',
    )
    assert code == 0
    data = msgspec.json.decode(capsys.readouterr().out)
    assert [r["phoneE164"] for r in data["results"]] == ["+15550000005", "+15550000004"]
    sent = server.requests[-1].json
    assert sent == {
        "action": "list_contacts", "fields": ["id", "phoneE164"], "sort": "-phoneE164",
        "filter": {"company": {"notEq": "nobody"}}, "page": {"limit": 2, "offset": 0},
    }


async def test_global_options_work_before_the_command(
    server: FakeSippet, capsys: pytest.CaptureFixture[str]
) -> None:
    """--api-key and --base-url may precede the subcommand too."""
    code = await sippet("--api-key", KEY, "--base-url", server.url, "run", "list_calls",
                        "--fields", "id")
    assert code == 0
    assert msgspec.json.decode(capsys.readouterr().out) == []


async def test_rpc_error_exits_1_with_a_typed_message(
    server: FakeSippet, capsys: pytest.CaptureFixture[str]
) -> None:
    """An RPC failure prints the error class and action on stderr and exits 1."""
    code = await sippet("run", "list_contactz", "--fields", "id", "--api-key", KEY,
                        "--base-url", server.url)
    assert code == 1
    err = capsys.readouterr().err
    assert "ActionNotFoundError" in err
    assert "list_contactz" in err


async def test_missing_key_is_a_usage_error_before_any_request(
    server: FakeSippet, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No key anywhere: exit 2, a message naming the variable, and nothing sent."""
    monkeypatch.delenv("SIPPET_SECRET_KEY", raising=False)
    code = await sippet("run", "list_contacts", "--fields", "id", "--base-url", server.url)
    assert code == 2
    assert "SIPPET_SECRET_KEY" in capsys.readouterr().err
    assert server.requests == []


async def test_validate_reports_errors_and_exits_1(
    server: FakeSippet, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sippet validate` prints ok/errors; an invalid payload exits 1 and persists nothing."""
    code = await sippet("validate", "create_contact", "--input", '{"fullName": "Ada"}',
                        "--api-key", KEY, "--base-url", server.url)
    assert code == 1
    report = msgspec.json.decode(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["errors"][0]["fields"] == ["phoneE164"]
    assert len(server.contacts) == 5


def test_bad_json_option_is_rejected_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    """Malformed JSON in --input is an argparse error (exit 2) naming the problem."""
    with pytest.raises(SystemExit) as exc:
        main(["run", "create_contact", "--input", "{nope", "--api-key", KEY])
    assert exc.value.code == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_secret_key_never_printed(
    capsys: pytest.CaptureFixture[str], run_cli: Callable[[list[str]], int]
) -> None:
    """Errors from a bad base URL do not echo the key."""
    code = run_cli(["run", "list_contacts", "--fields", "id", "--api-key", KEY,
                 "--base-url", "ftp://example"])
    assert code == 2
    captured = capsys.readouterr()
    assert KEY not in captured.out + captured.err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.slow
def test_fake_server_command_serves_until_sigterm() -> None:
    """`sippet fake-server` answers RPCs on 127.0.0.1 and exits 0 on SIGTERM."""
    port = _free_port()
    env = {**os.environ, "SIPPET_SECRET_KEY": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sippet_async", "fake-server", "--api-key", KEY,
         "--port", str(port), "--seed-contacts", "3"],
        stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stderr is not None
        # The banner is printed once the socket is bound; under PYTHONDEVMODE asyncio's
        # slow-callback reports may come first, so read lines until it (or EOF).
        banner = ""
        for line in proc.stderr:
            if "listening on" in line:
                banner = line
                break
        assert f"http://127.0.0.1:{port}" in banner
        out = subprocess.run(
            [sys.executable, "-m", "sippet_async", "run", "list_contacts", "--fields", "id",
             "--api-key", KEY, "--base-url", f"http://127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout
        assert len(msgspec.json.decode(out)["results"]) == 3
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.mark.slow
async def test_demo_exits_0_with_every_check_holding(capsys: pytest.CaptureFixture[str]) -> None:
    """`sippet demo` runs end to end on its embedded server and its checks all pass."""
    code = await sippet("demo")
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "FAILED" not in captured.out + captured.err
