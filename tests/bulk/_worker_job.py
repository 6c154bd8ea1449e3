"""A call worker run as a real process by test_worker.py, stopped with SIGTERM.

Usage: python _worker_job.py URL  (key in $SIPPET_SECRET_KEY). Takes an endless stream of
call requests; on SIGTERM it stops taking them, finishes what is in flight and prints one
JSON line: {"outcomes": {toE164: status}, "taken": N}.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import call, client_for

from sippet_async import CallWorker, Outcome


async def main(url: str) -> None:
    taken = 0

    async def requests() -> AsyncIterator[dict[str, Any]]:
        nonlocal taken
        i = 0
        while True:
            taken += 1
            yield call(i)
            i += 1

    outcomes: dict[str, str] = {}

    def record(outcome: Outcome[dict[str, Any]]) -> None:
        number = outcome.item["toE164"]
        assert number not in outcomes, f"{number} reported twice"
        outcomes[number] = outcome.status

    async with client_for(url, rate_limit=400) as client:
        worker = CallWorker(client, record, concurrency=8, grace=30.0)
        await worker.run(requests())
    print(json.dumps({"outcomes": outcomes, "taken": taken}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
