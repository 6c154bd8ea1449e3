"""The ``sippet`` command: run and validate actions, serve the fake server, run the demo.

Every command goes through the public package, exactly as a user's code would.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final

import msgspec

from sippet_async import SippetClient, SippetError, UsageError, __version__

__all__ = ["main"]

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1  # the API or the network said no
EXIT_USAGE: Final = 2  # argparse's own code for bad arguments


def _json_arg(text: str) -> Any:
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc


def _fields_arg(text: str) -> list[Any]:
    """``a,b`` or a JSON array (for nested selections, docs/protocol.md §3.2)."""
    if text.lstrip().startswith("["):
        value = _json_arg(text)
        if not isinstance(value, list):  # pragma: no cover - '[' guarantees a list or error
            raise argparse.ArgumentTypeError("fields must be a JSON array")
        return value
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("fields is empty")
    return names


def _identity_arg(text: str) -> Any:
    """A raw identity (``uuid``) or a JSON object for composite identities (§3.5)."""
    return _json_arg(text) if text.lstrip().startswith("{") else text


def _request_keys(args: argparse.Namespace) -> dict[str, Any]:
    keys = {
        "input": args.input,
        "identity": args.identity,
        "fields": args.fields,
        "filter": args.filter,
        "sort": args.sort,
        "page": args.page,
        "metadata_fields": args.metadata_fields,
        "get_by": args.get_by,
    }
    return {name: value for name, value in keys.items() if value is not None}


def _client(args: argparse.Namespace) -> SippetClient:
    return SippetClient(args.api_key, base_url=args.base_url)


def _fill_globals(args: argparse.Namespace) -> argparse.Namespace:
    """Options given in neither position stay unset under SUPPRESS: default them here."""
    for name in ("api_key", "base_url"):
        if not hasattr(args, name):
            setattr(args, name, None)
    return args


def _print_json(value: Any) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(value)).decode() + "\n")


async def _cmd_run(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        data = await client.run(args.action, **_request_keys(args))
    _print_json(data)
    return EXIT_OK


async def _cmd_validate(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        check = await client.validate(args.action, **_request_keys(args))
    _print_json({"ok": check.ok, "errors": [msgspec.to_builtins(e) for e in check.errors]})
    return EXIT_OK if check.ok else EXIT_FAILED


async def _cmd_demo(args: argparse.Namespace) -> int:
    if args.fleet:
        from sippet_async._cli._demo_fleet import run_fleet_demo

        return await run_fleet_demo(seed=args.seed)
    from sippet_async._cli._demo import run_demo

    return await run_demo(seed=args.seed)


async def _cmd_import(args: argparse.Namespace) -> int:
    from sippet_async._cli._import import command

    return await command(args)


async def _cmd_export(args: argparse.Namespace) -> int:
    from sippet_async._cli._export import DEFAULT_EXPORT_PAGE_SIZE, export_jsonl, terminal_progress

    if args.resume and args.output is None:
        raise UsageError("--resume continues a file: give it with -o FILE")
    from sippet_async._cli._signals import STOP_SIGNALS, exit_code

    out = args.output if args.output is not None else sys.stdout.buffer
    with terminal_progress(sys.stderr) as progress:
        async with _client(args) as client:
            result = await export_jsonl(
                client, args.action, out, fields=args.fields, filter=args.filter,
                sort=args.sort, concurrency=args.concurrency, resume=args.resume,
                progress=progress, stop_signals=STOP_SIGNALS,
                page_size=DEFAULT_EXPORT_PAGE_SIZE if args.page_size is None else args.page_size,
            )
    if result.signalled is None:
        return EXIT_OK
    print(f"sippet export: INTERRUPTED by {result.signalled.name}: {result.records} records "
          f"in the output, {result.written} of them written by this run, each page whole",
          file=sys.stderr)
    if args.output is None:
        print("sippet export: standard output cannot be resumed; export to a file "
              "(-o FILE) to continue one later with --resume", file=sys.stderr)
    else:
        again = "the same command" if args.resume else "the same command with --resume"
        print(f"sippet export: run {again} to continue {args.output} where it stopped",
              file=sys.stderr)
    return exit_code(result.signalled)


def _add_request_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", help="RPC action name, e.g. list_contacts")
    parser.add_argument("--input", type=_json_arg, help="input object as JSON")
    parser.add_argument("--identity", type=_identity_arg, help="record id, or a JSON object")
    parser.add_argument("--fields", type=_fields_arg, help="a,b or a JSON array")
    parser.add_argument("--filter", type=_json_arg, help='as JSON: {"fullName": {"eq": "Ada"}}')
    parser.add_argument("--sort", help="e.g. -insertedAt,+fullName")
    parser.add_argument("--page", type=_json_arg, help='page as JSON: {"limit": 20}')
    parser.add_argument("--metadata-fields", type=_fields_arg, help="a,b")
    parser.add_argument("--get-by", type=_json_arg, help="getBy object as JSON")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``sippet`` subcommand."""
    # --api-key / --base-url work before or after the command: the subcommands share them
    # through a parent whose defaults are SUPPRESS, so a later position never resets them.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api-key", default=argparse.SUPPRESS,
                        help="secret key (default: $SIPPET_SECRET_KEY)")
    common.add_argument("--base-url", default=argparse.SUPPRESS,
                        help="API root (default: $SIPPET_BASE_URL or Sippet's)")
    parser = argparse.ArgumentParser(prog="sippet", description="Sippet RPC from the shell.",
                                     parents=[common])
    parser.add_argument("--version", action="version", version=f"sippet_async {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], **kwargs)

    run = add("run", help="run an action and print its data as JSON")
    _add_request_options(run)
    run.set_defaults(handler=_cmd_run)

    validate = add("validate", help="check a payload without running it")
    _add_request_options(validate)
    validate.set_defaults(handler=_cmd_validate)

    from sippet_async._cli import _fake_server

    fake = add("fake-server", help="serve the local Sippet-compatible fake server",
               description=_plain(_fake_server.__doc__))
    _fake_server.add_arguments(fake)
    fake.set_defaults(handler=_fake_server.command)

    demo = add("demo", help="run the end-to-end demo on an embedded fake server")
    demo.add_argument("--seed", type=int, default=7, help="seed for generated data and faults")
    demo.add_argument("--fleet", action="store_true",
                      help="instead: worker processes on a Redis call queue (needs [redis])")
    demo.set_defaults(handler=_cmd_demo)

    from sippet_async._cli._import import EXIT_CODES_HELP
    from sippet_async._cli._import import add_arguments as add_import_arguments

    bulk_import = add(
        "import", help="run an action per row of a CSV/JSONL file (resumable)",
        description="Run ACTION once per row of FILE. Re-running the same command resumes\n"
                    "from the journal. It stops at once on an error no retry can fix\n"
                    "(a rejected key, an unknown action, a wrong URL).",
        epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_import_arguments(bulk_import)
    bulk_import.set_defaults(handler=_cmd_import)

    from sippet_async._cli import _enqueue, _worker

    enqueue = add("enqueue", help="queue one job per row of a CSV/JSONL file on Redis",
                  description=_plain(_enqueue.__doc__))
    _enqueue.add_arguments(enqueue)
    enqueue.set_defaults(handler=_enqueue.command)

    worker = add("worker", help="run one call worker of a fleet, consuming a Redis queue",
                 description=_plain(_worker.__doc__))
    _worker.add_arguments(worker)
    worker.set_defaults(handler=_worker.command)

    export = add("export", help="write every record of a list action as JSON Lines")
    export.add_argument("action", help="a list action, e.g. list_contacts")
    export.add_argument("--fields", type=_fields_arg, required=True, help="a,b or a JSON array")
    export.add_argument("--filter", type=_json_arg, help='as JSON: {"company": {"eq": "Acme"}}')
    export.add_argument("--sort", help="e.g. --sort=-insertedAt ('=' before a leading '-')")
    export.add_argument("--page-size", type=int, metavar="N", help="records per page (500)")
    export.add_argument("--concurrency", type=int, default=1, metavar="N",
                        help="offset pages fetched at once (default 1: keyset-safe)")
    export.add_argument("-o", "--output", metavar="FILE", help="default: standard output")
    export.add_argument("--resume", action="store_true", help="continue a partial FILE")
    export.set_defaults(handler=_cmd_export)
    return parser


def _plain(doc: str | None) -> str:
    """A module docstring as --help text: without reST's double backquotes."""
    return (doc or "").replace("``", "")


_DASH_VALUE_OPTIONS: Final = frozenset({"--sort"})


def _glue_dash_values(argv: Sequence[str]) -> list[str]:
    """``--sort -insertedAt`` -> ``--sort=-insertedAt``: a descending sort starts with '-'
    (docs/protocol.md §3.4), which argparse would otherwise read as an option."""
    out: list[str] = []
    items = iter(argv)
    for arg in items:
        if arg in _DASH_VALUE_OPTIONS:
            value = next(items, None)
            out.append(arg if value is None else f"{arg}={value}")
        else:
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sippet`` and ``python -m sippet_async``; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    args = _fill_globals(build_parser().parse_args(_glue_dash_values(argv)))
    handler: Command = args.handler
    try:
        return asyncio.run(handler(args))
    except UsageError as exc:
        print(f"sippet: usage error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SippetError as exc:
        print(f"sippet: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:  # files of import/export, a port already in use
        print(f"sippet: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:  # before a command handles Ctrl-C, or export's second one
        with contextlib.suppress(Exception):
            print("sippet: interrupted", file=sys.stderr)
        return 130
