"""The pytest plugin in a fresh project: only sippet_async and pytest-asyncio installed, in
strict and in auto mode, run in a separate pytest process (``pytester``)."""

from __future__ import annotations

import textwrap
from typing import Final

import pytest

pytest_plugins = ["pytester"]

MODES: Final = ("strict", "auto")
# What a user's project would run with: unknown markers and any warning are errors.
STRICT_ARGS: Final = ("--strict-markers", "-W", "error", "-p", "no:cacheprovider")


def ini(mode: str) -> str:
    """A fresh project's pytest.ini; the loop scope is set, as pytest-asyncio asks (else it
    warns at start-up, and -W error makes that an error)."""
    return f"[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\n"

TESTS: Final = '''
import pytest

from sippet_async import RetryPolicy, ServerError, SippetClient
from sippet_async.testing import FakeSippet, Faults

pytestmark = pytest.mark.sippet(api_key="sk_test_module_key", seed_contacts=2)


async def no_wait(seconds: float) -> None:
    pass


@pytest.mark.asyncio
async def test_client_is_bound_to_the_server(sippet_client, sippet_server) -> None:
    assert isinstance(sippet_server, FakeSippet)
    assert isinstance(sippet_client, SippetClient)
    assert sippet_server.url.startswith("http://127.0.0.1:")
    page = await sippet_client.run("list_contacts", fields=["id"])
    assert len(page["results"]) == 2
    assert [(r.action, r.status) for r in sippet_server.requests] == [("list_contacts", 200)]
    assert sippet_server.requests[0].headers["x-api-key"] == "sk_test_module_key"


@pytest.mark.asyncio
@pytest.mark.sippet(seed_contacts=5)
async def test_nearest_marker_wins_keyword_by_keyword(sippet_client, sippet_server) -> None:
    assert len(sippet_server.contacts) == 5
    assert sippet_server.api_key == "sk_test_module_key"


@pytest.mark.asyncio
@pytest.mark.sippet(faults=Faults(p_503=1.0, only_actions={"list_calls"}),
                    client_options={"retry": RetryPolicy(attempts=3, sleep=no_wait)})
async def test_faults_and_client_options(sippet_client, sippet_server) -> None:
    with pytest.raises(ServerError):
        await sippet_client.run("list_calls", fields=["id"])
    assert [r.fault for r in sippet_server.requests] == ["http_503"] * 3


@pytest.mark.asyncio
async def test_a_fresh_server_per_test(sippet_server) -> None:
    assert sippet_server.requests == []
    assert len(sippet_server.contacts) == 2


def test_a_sync_test_is_untouched() -> None:
    assert True
'''


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_fixtures_and_marker_work_in_a_fresh_project(pytester: pytest.Pytester, mode: str) -> None:
    """Fixtures, the marker (module + test, client_options) and the records, in each mode."""
    pytester.makeini(ini(mode))
    pytester.makepyfile(test_user=TESTS)
    result = pytester.runpytest_subprocess(*STRICT_ARGS)
    result.assert_outcomes(passed=5)


@pytest.mark.slow
def test_failing_report_lists_the_servers_requests(pytester: pytest.Pytester) -> None:
    """A failing test that used sippet_server shows what the server received."""
    pytester.makeini(ini("strict"))
    pytester.makepyfile(test_user='''
        import pytest

        @pytest.mark.asyncio
        async def test_fails(sippet_client):
            await sippet_client.run("list_calls", fields=["id"])
            assert False, "on purpose"
    ''')
    result = pytester.runpytest_subprocess(*STRICT_ARGS)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*sippet_server requests (1)*",
        "POST /rpc/public/run list_calls -> 200 (executed)",
    ])


@pytest.mark.slow
def test_bad_marker_options_are_named(pytester: pytest.Pytester) -> None:
    """An unknown marker keyword errors the test with the known ones listed."""
    pytester.makeini(ini("auto"))
    pytester.makepyfile(test_user='''
        import pytest

        @pytest.mark.sippet(seed_contact=3)
        async def test_typo(sippet_server):
            pass
    ''')
    result = pytester.runpytest_subprocess(*STRICT_ARGS)
    result.assert_outcomes(errors=1)
    assert "@pytest.mark.sippet got unknown option(s) ['seed_contact']" in result.stdout.str()


@pytest.mark.slow
def test_without_pytest_asyncio_pytest_starts_and_the_fixtures_say_why(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With pytest-asyncio not importable, other tests run; the fixtures fail with a hint."""
    shim = pytester.mkdir("shim").joinpath("pytest_asyncio")
    shim.mkdir()
    shim.joinpath("__init__.py").write_text('raise ImportError("not installed (simulated)")\n')
    monkeypatch.setenv("PYTHONPATH", str(shim.parent))
    pytester.makepyfile(test_user=textwrap.dedent('''
        import pytest

        def test_unrelated():
            assert True

        @pytest.mark.sippet(seed_contacts=1)
        def test_needs_the_server(sippet_server):
            pass
    '''))
    # -p no:asyncio: the installed pytest-asyncio's own entry point must not load either.
    result = pytester.runpytest_subprocess(*STRICT_ARGS, "-p", "no:asyncio")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*the sippet_server fixture of sippet_async needs "
                                 "pytest-asyncio: pip install pytest-asyncio*"])
