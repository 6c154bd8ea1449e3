"""The layers: the pure modules import no network or event-loop code; every import points down.

Why two checks, and why not simply ``python -c "import sippet_async._protocol"``: importing
any submodule first runs the package ``__init__``, which re-exports the client and so
imports aiohttp and asyncio. That one-liner would always fail and prove nothing about the
pure modules. So:

1. **Static (the rule itself).** Parse the pure modules with ``ast`` and follow every
   import that stays inside ``sippet_async`` (absolute or relative, including
   ``from sippet_async import x``, which means running ``__init__``), transitively. No module
   reached may import aiohttp, asyncio, socket, ssl or other I/O modules, anywhere in its
   source (``TYPE_CHECKING`` blocks and function bodies included: a type-only import of
   aiohttp in the protocol layer is already a layering mistake). The pure modules also
   contain no ``async``/``await``. This checks what we write; it cannot see inside
   third-party packages.
2. **Runtime (what actually gets loaded).** In a fresh interpreter, register a bare
   ``sippet_async`` package object (its ``__path__`` only, so ``__init__`` does not run),
   import the four pure modules for real, and assert aiohttp and asyncio were not loaded.
   This covers third-party imports (msgspec) and any import the AST walk could not see.
   ``socket`` is *not* asserted here: the standard library's ``email.utils`` (used to parse
   HTTP-dates in ``Retry-After``) imports it for ``make_msgid``; that is not network I/O by
   this package, which is why socket/ssl are a static rule on our own imports.

Both checks are themselves checked: the static walk must flag ``_transport`` and
``_client``, and the runtime probe must see asyncio when asked to import ``_transport``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

PACKAGE: Final = "sippet_async"
PACKAGE_DIR: Final = Path(__file__).resolve().parents[1] / PACKAGE
PURE: Final = ("_protocol", "_walk", "_models", "_errors", "_config", "_hooks", "_runner",
                 "_limiter", "_adaptive", "_mismatch")
# Network, TLS and event-loop modules; a dotted entry also forbids its submodules.
FORBIDDEN: Final = (
    "aiohttp",
    "asyncio",
    "socket",
    "ssl",
    "selectors",
    "select",
    "uvloop",
    "anyio",
    "http.client",
    "urllib.request",
    "aiolimiter",
    "yarl",
    "multidict",
)


def _module_file(module: str) -> Path | None:
    """The source file of a ``sippet_async`` module, or None if it is not one."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    parts = module.split(".")[1:]
    candidates = [PACKAGE_DIR.joinpath(*parts, "__init__.py")]
    if parts:
        candidates.append(PACKAGE_DIR.joinpath(*parts[:-1], parts[-1] + ".py"))
    return next((path for path in candidates if path.is_file()), None)


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _imports(module: str) -> list[str]:
    """Every module name ``module``'s source imports, resolved to absolute dotted names."""
    path = _module_file(module)
    assert path is not None, module
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(module, path)
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.append(target)
            # ``from pkg import name`` may name a submodule: follow it if it is one.
            found.extend(
                f"{target}.{alias.name}"
                for alias in node.names
                if _module_file(f"{target}.{alias.name}") is not None
            )
    return found


def _is_forbidden(name: str) -> bool:
    return any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)


def _violations(start: str) -> list[str]:
    """Import chains from ``start`` to a forbidden module, following package imports."""
    seen: set[str] = set()
    stack: list[tuple[str, tuple[str, ...]]] = [(start, (start,))]
    bad: list[str] = []
    while stack:
        module, chain = stack.pop()
        if module in seen:
            continue
        seen.add(module)
        for name in _imports(module):
            if _is_forbidden(name):
                bad.append(" -> ".join((*chain, name)))
            elif _module_file(name) is not None:
                stack.append((name, (*chain, name)))
            else:
                # A package module we cannot find would silently end the walk.
                assert not name.startswith(PACKAGE + "."), name
    return sorted(bad)


@pytest.mark.parametrize("name", PURE)
def test_pure_module_imports_no_network_code(name: str) -> None:
    """No import chain from a pure module (within the package) reaches network/loop code."""
    assert _violations(f"{PACKAGE}.{name}") == []


@pytest.mark.parametrize("name", PURE)
def test_pure_module_has_no_async_code(name: str) -> None:
    """The pure modules define no coroutine and await nothing (sans-I/O)."""
    path = _module_file(f"{PACKAGE}.{name}")
    assert path is not None
    tree = ast.parse(path.read_text(encoding="utf-8"))
    async_nodes = (ast.AsyncFunctionDef, ast.Await, ast.AsyncFor, ast.AsyncWith)
    found = [f"{type(n).__name__}:{n.lineno}" for n in ast.walk(tree) if isinstance(n, async_nodes)]
    assert found == []


@pytest.mark.parametrize(("name", "culprit"), [("_transport", "aiohttp"), ("_client", "asyncio")])
def test_static_walk_detects_network_imports(name: str, culprit: str) -> None:
    """The walker is not vacuous: it flags the modules that do talk to the network."""
    assert any(chain.endswith(f"-> {culprit}") for chain in _violations(f"{PACKAGE}.{name}"))


def test_static_walk_follows_the_package_root() -> None:
    """``from sippet_async import x`` counts as importing __init__ (which loads the client)."""
    assert f"{PACKAGE}" in _imports(f"{PACKAGE}._cli._main")
    assert _violations(PACKAGE)


_PROBE: Final = """
import importlib, json, sys, types
root = types.ModuleType({package!r})
root.__path__ = [sys.argv[1]]  # a bare package: its __init__ never runs
sys.modules[{package!r}] = root
before = set(sys.modules)
for name in sys.argv[2:]:
    importlib.import_module({package!r} + "." + name)
print(json.dumps({{"before": sorted(before), "after": sorted(sys.modules),
                  "init_ran": hasattr(root, "SippetClient")}}))
"""


def _probe(*modules: str) -> dict[str, object]:
    """Import ``modules`` in a fresh interpreter, bypassing the package __init__."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(package=PACKAGE), str(PACKAGE_DIR), *modules],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_importing_the_pure_modules_loads_no_aiohttp_or_asyncio() -> None:
    """At runtime the pure modules (and msgspec under them) load neither aiohttp nor asyncio."""
    result = _probe(*PURE)
    assert result["init_ran"] is False
    before, after = result["before"], result["after"]
    assert isinstance(before, list)
    assert isinstance(after, list)
    preloaded = [m for m in before if m.split(".")[0] in ("aiohttp", "asyncio")]
    if preloaded:  # a site hook already imported them: this probe cannot tell anything
        pytest.skip(f"the interpreter preloads {preloaded}")
    assert {f"{PACKAGE}.{name}" for name in PURE} <= set(after)
    assert [m for m in after if m.split(".")[0] in ("aiohttp", "asyncio")] == []
    assert f"{PACKAGE}._transport" not in after
    assert f"{PACKAGE}._client" not in after


def test_runtime_probe_sees_network_imports() -> None:
    """The probe is not vacuous: importing the transport does load aiohttp and asyncio."""
    after = _probe("_transport")["after"]
    assert isinstance(after, list)
    assert "aiohttp" in after
    assert "asyncio" in after


# -- the layer table ------------------------------------------------------------------------
# Lowest first. A module may import from its own layer and the layers below it, never from
# a layer above (TYPE_CHECKING and function-local imports included): the consumers reach the
# client through the ``Runner`` protocol, the engine never names what sits on it.
LAYERS: Final = (
    ("pure", ("_version", "_errors", "_config", "_models", "_mismatch", "_protocol", "_walk",
              "_hooks", "_resources", "_runner", "_limiter", "_adaptive")),
    ("engine", ("_transport", "_retry", "_ratelimit", "_limits", "_breaker")),
    ("consumers", ("_iterator", "_jobs", "_typed_methods")),
    ("client", ("_client",)),
    ("package", ("__init__",)),
    # pip install "sippet_async[redis]" (on the engine's limiter seam and a consumer of
    # _jobs) / "sippet_async[otel]" (an Observer)
    ("optional parts", ("redis", "otel")),
    ("fake server", ("testing",)),
    # pytest's entry point: FakeSippet plus a SippetClient bound to it, as a user's own
    # fixtures would be. It sits above the fake server (which must not know the client).
    ("pytest plugin", ("testing.pytest_plugin",)),
    ("command line", ("_cli", "__main__")),
)


def _rank(module: str) -> int:
    """The layer of a ``sippet_async`` module, by the longest dotted prefix under the
    package that the table names (``testing.pytest_plugin`` before ``testing``)."""
    parts = module.split(".")[1:] or ["__init__"]
    for size in range(len(parts), 0, -1):
        prefix = ".".join(parts[:size])
        for rank, (_, members) in enumerate(LAYERS):
            if prefix in members:
                return rank
    raise AssertionError(f"{module} is in no layer of LAYERS: add it to the table")


def _package_modules() -> list[str]:
    found = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append(".".join((PACKAGE, *parts)))
    return found


def _internal_imports(module: str) -> set[str]:
    """The package modules ``module`` depends on. ``from sippet_async import _protocol``
    names the submodule, not the package root (any import runs the root's ``__init__``
    first; that is Python's order, not a dependency of ours)."""
    path = _module_file(module)
    assert path is not None, module
    found = {name for name in _imports(module) if _module_file(name) is not None}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == PACKAGE and not node.level \
                and all(_module_file(f"{PACKAGE}.{a.name}") for a in node.names):
            found.discard(PACKAGE)
    return found


def test_every_module_has_a_layer() -> None:
    """The table covers the whole package, so a new module has to be placed in it."""
    for module in _package_modules():
        _rank(module)


def test_imports_point_down_only() -> None:
    """No module imports from a layer above its own."""
    upward = [
        f"{module} ({LAYERS[_rank(module)][0]}) imports {name} ({LAYERS[_rank(name)][0]})"
        for module in _package_modules()
        for name in sorted(_internal_imports(module))
        if _rank(name) > _rank(module)
    ]
    assert upward == []


def test_the_fake_server_imports_nothing_of_the_client() -> None:
    """The fake server is written from the protocol doc alone: sharing the client's code
    would let both share one misunderstanding."""
    leaks = [
        f"{module} imports {name}"
        for module in _package_modules() if _rank(module) == _rank(f"{PACKAGE}.testing")
        for name in sorted(_internal_imports(module))
        if not name.startswith(f"{PACKAGE}.testing")
    ]
    assert leaks == []


def test_no_import_circle() -> None:
    """The module graph (type-only imports included) has no cycle."""
    graph = {module: _internal_imports(module) - {module} for module in _package_modules()}
    # A package's __init__ importing its own submodules is not a circle of the code.
    for module, names in graph.items():
        names -= {name for name in set(names) if module.startswith(name + ".")}
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> None:
        if module in path:
            raise AssertionError("import circle: " + " -> ".join([*path[path.index(module):],
                                                                  module]))
        if module in done:
            return
        path.append(module)
        for name in sorted(graph.get(module, ())):
            visit(name)
        path.pop()
        done.add(module)

    for module in graph:
        visit(module)


def test_layer_check_sees_an_upward_import() -> None:
    """The rank is not vacuous: the engine is below the client, the client below the CLI."""
    assert _rank(f"{PACKAGE}._transport") < _rank(f"{PACKAGE}._client") \
        < _rank(f"{PACKAGE}._cli._main")
    assert f"{PACKAGE}._iterator" in _internal_imports(f"{PACKAGE}._client")


def test_importing_the_package_does_not_import_redis() -> None:
    """The Redis parts are optional: ``import sippet_async`` loads no redis-py (a client
    without the [redis] extra works, and starts as fast as before)."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys, sippet_async, sippet_async.testing; "
         "print(sorted(m for m in sys.modules if m == 'redis' or m.startswith('redis.')"
         " or m.startswith('sippet_async.redis')))"],
        capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(done.stdout.replace("'", '"')) == []


def test_the_pytest_plugin_is_its_own_layer_above_the_fake_server() -> None:
    """The plugin binds a client to the server, so it may import the client; the rank that
    lets it (the longest table prefix) keeps the rest of ``testing`` in the fake-server layer."""
    plugin = f"{PACKAGE}.testing.pytest_plugin"
    assert _rank(plugin) > _rank(f"{PACKAGE}.testing._server") == _rank(f"{PACKAGE}.testing")
    assert PACKAGE in _internal_imports(plugin)
