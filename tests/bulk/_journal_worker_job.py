"""A call worker with a journal, run as a real process by test_worker_journal.py.

Usage: python _journal_worker_job.py URL JOURNAL N [reconcile]  (key in $SIPPET_SECRET_KEY).
Takes call requests 0..N-1 and prints "progress" after each outcome until the end, SIGKILL
or Ctrl-C. At the end, or after a Ctrl-C, it prints one JSON line: {"outcomes":
{toE164: status}, "summary": "..."}; a Ctrl-C exits 130, as the worker's ``signalled`` says.
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


async def main(url: str, journal: str, n: int, reconcile: bool) -> int:
    async def requests() -> AsyncIterator[dict[str, Any]]:
        for i in range(n):
            yield call(i)

    outcomes: dict[str, str] = {}

    def record(outcome: Outcome[dict[str, Any]]) -> None:
        number = outcome.item["toE164"]
        assert number not in outcomes, f"{number} reported twice"
        outcomes[number] = outcome.status
        print("progress", flush=True)

    async with client_for(url, rate_limit=400) as client:

        async def placed(request: dict[str, Any]) -> Any:
            found = await client.run("list_calls", fields=["id", "toE164"],
                                     filter={"toE164": {"eq": request["toE164"]}})
            return found[0] if found else None

        worker = CallWorker(client, record, concurrency=8, journal=journal,
                            reconcile=placed if reconcile else None)
        report = await worker.run(requests())
    print(json.dumps({"outcomes": outcomes, "summary": report.summary()}), flush=True)
    return 0 if worker.signalled is None else 128 + worker.signalled


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]),
                              sys.argv[4:] == ["reconcile"])))
