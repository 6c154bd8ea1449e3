"""``sippet worker``: one call worker of a fleet, consuming a Redis call queue.

It runs until SIGTERM or Ctrl-C: then it takes no more jobs, lets those in flight finish
(``--grace`` seconds; a second signal cancels them) and leaves the rest queued for the other
workers. A live progress line goes to standard error on a terminal; a summary of outcomes
goes to standard output. Exit code: 1 if a job ended failed or unknown, 130 after Ctrl-C,
else 0.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Final

from sippet_async import CallWorker, Outcome, SippetClient, UsageError
from sippet_async._cli._fleet import add_redis_options, redis_parts, stream_action
from sippet_async._cli._signals import exit_code

__all__ = ["add_arguments", "command"]

PROGRESS_EVERY: Final = 1.0  # seconds between progress lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``sippet worker``."""
    add_redis_options(parser)
    parser.add_argument("--group", default="dialers", metavar="G",
                        help="the consumer group the workers share (default dialers)")
    parser.add_argument("--action", help="default: the one `sippet enqueue` recorded, "
                                         "else create_call")
    parser.add_argument("--rate", type=float, metavar="R", help="requests per second")
    parser.add_argument("--rate-key", metavar="K",
                        help="share --rate across every worker through Redis under key K")
    parser.add_argument("--reconcile-by", metavar="FIELD",
                        help="look a job up by this input field before any re-send, e.g. "
                             "toE164 (without it, a job in doubt is reported unknown)")
    parser.add_argument("--reconcile-action", metavar="ACTION",
                        help="the list action of the lookup (default: create_X -> list_Xs)")
    parser.add_argument("--concurrency", type=int, metavar="N", help="jobs in flight")
    parser.add_argument("--timeout", type=float, metavar="S", help="request timeout")
    parser.add_argument("--heartbeat", type=float, default=10.0, metavar="S",
                        help="a worker silent this long is dead: its jobs are taken over")
    parser.add_argument("--claim-idle", type=float, metavar="S",
                        help="take over only jobs pending this long (> --timeout)")
    parser.add_argument("--grace", type=float, default=20.0, metavar="S",
                        help="seconds in-flight jobs get after SIGTERM or Ctrl-C")


def _lookup(client: SippetClient, action: str, field: str,
            list_action: str | None) -> Callable[[dict[str, Any]], Awaitable[Any]]:
    if list_action is None:
        noun = action.removeprefix("create_")
        if noun == action:
            raise UsageError(f"--reconcile-by: cannot tell the list action of {action}; "
                             "pass --reconcile-action")
        list_action = f"list_{noun}s"

    async def lookup(item: dict[str, Any]) -> Any:
        if field not in item:
            raise UsageError(f"--reconcile-by {field}: the job has no {field!r}")
        found = await client.run(list_action, fields=["id", field],
                                 filter={field: {"eq": item[field]}})
        if isinstance(found, dict):  # a paginated list
            found = found.get("results", [])
        return found[0] if found else None

    return lookup


def _rate_limit(args: argparse.Namespace, parts: Any) -> Any:
    if args.rate_key is None:
        return args.rate
    if args.rate is None:
        raise UsageError("--rate-key needs --rate")
    return parts.RedisRateLimit(args.redis, key=args.rate_key, rate=args.rate)


async def command(args: argparse.Namespace) -> int:
    """Run one worker until SIGTERM / Ctrl-C; exit 1 if a job ended failed or unknown."""
    parts = redis_parts()
    action = args.action or await stream_action(args.redis, args.stream, None) \
        or "create_call"
    options: dict[str, Any] = {"rate_limit": _rate_limit(args, parts)}
    if args.timeout is not None:
        options["timeout"] = args.timeout
    counts: collections.Counter[str] = collections.Counter()
    async with parts.RedisCallQueue(
        args.redis, stream=args.stream, group=args.group, heartbeat=args.heartbeat,
        claim_idle=args.claim_idle,
    ) as queue, SippetClient(args.api_key, base_url=args.base_url, **options) as client:
        reconcile = None if args.reconcile_by is None else _lookup(
            client, action, args.reconcile_by, args.reconcile_action)

        def report(outcome: Outcome[Any]) -> None:
            counts[outcome.status] += 1

        worker = CallWorker(client, report, action=action, concurrency=args.concurrency,
                            reconcile=reconcile, grace=args.grace)
        progress = asyncio.create_task(_progress(queue.consumer, counts)) \
            if sys.stderr.isatty() else None
        try:
            report_ = await worker.run(queue, stop_signals=(signal.SIGTERM, signal.SIGINT))
        finally:
            if progress is not None:
                progress.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await progress
    print(f"sippet worker {queue.consumer}: {_summary(counts)}; {report_.wall_time:.2f}s",
          flush=True)
    if worker.signalled is signal.SIGINT:
        print(f"sippet worker {queue.consumer}: INTERRUPTED (Ctrl-C): jobs in flight finished "
              "and were recorded; jobs not taken stay queued: run `sippet worker` again, or "
              "let the other workers take them", file=sys.stderr, flush=True)
        return exit_code(signal.SIGINT)
    return 1 if counts["failed"] or counts["unknown"] else 0


def _summary(counts: collections.Counter[str]) -> str:
    total = sum(counts.values())
    parts = ", ".join(f"{counts[s]} {s}" for s in ("succeeded", "failed", "unknown",
                                                   "not_sent") if counts[s])
    return f"{total} jobs" + (f": {parts}" if parts else "")


async def _progress(consumer: str, counts: collections.Counter[str]) -> None:
    while True:
        await asyncio.sleep(PROGRESS_EVERY)
        print(f"\r{consumer}: {_summary(counts)}", end="", file=sys.stderr, flush=True)
