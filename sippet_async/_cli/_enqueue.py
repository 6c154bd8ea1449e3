"""``sippet enqueue ACTION FILE``: queue one job per row on a Redis stream for the workers.

Each row becomes one job; its id is the ``--job-id-column`` value (the column is not sent)
or a hash of the row, so enqueueing the same file twice queues nothing twice.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from sippet_async._cli._fleet import add_redis_options, redis_parts, stream_action
from sippet_async._cli._rows import format_of, read_rows
from sippet_async._jobs._report import default_key

__all__ = ["add_arguments", "command"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``sippet enqueue``."""
    parser.add_argument("action", help="the write the workers run per job, e.g. create_call")
    parser.add_argument("file", type=Path, help="CSV with a header row, or JSON Lines")
    add_redis_options(parser)
    parser.add_argument("--job-id-column", metavar="C",
                        help="the column that identifies a job (default: a hash of the row)")
    parser.add_argument("--format", choices=("csv", "jsonl"),
                        help="default: from the file extension")


async def command(args: argparse.Namespace) -> int:
    """Queue the file's rows; print how many were new. Exit 1 if a row was unreadable."""
    parts = redis_parts()
    kind = format_of(args.file, args.format)
    column: str | None = args.job_id_column
    queue = parts.RedisCallQueue(args.redis, stream=args.stream)
    read = new = bad = 0
    started = time.monotonic()
    try:
        await stream_action(args.redis, args.stream, args.action)
        length = await queue.length()
        for row in read_rows(args.file, kind):
            read += 1
            if row.values is None:
                bad += 1
                print(f"sippet: row {row.number} (line {row.line}): {row.problem}",
                      file=sys.stderr)
                continue
            item: dict[str, Any] = dict(row.values)
            if column is not None:
                job_id = item.pop(column, None)
                if job_id in (None, ""):
                    bad += 1
                    print(f"sippet: row {row.number} (line {row.line}): no {column!r} value",
                          file=sys.stderr)
                    continue
                job_id = str(job_id)
            else:
                job_id = default_key(item)
            await queue.put(item, job_id=job_id)
            if sys.stderr.isatty() and read % 500 == 0:
                print(f"\r{read} rows queued", end="", file=sys.stderr, flush=True)
        new = await queue.length() - length
    finally:
        await queue.aclose()
    print(f"enqueued {new} new {args.action} jobs on {args.stream} ({read} rows: "
          f"{read - bad - new} already queued, {bad} unreadable) in "
          f"{time.monotonic() - started:.2f}s")
    return 1 if bad else 0
