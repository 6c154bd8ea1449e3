"""A bulk create job run as a real process by test_bulk_kill.py (killed, then resumed).

Usage: python _job.py URL JOURNAL N  (key in $SIPPET_SECRET_KEY). Prints one JSON line:
{"statuses": {index: status}, "summary": "..."}; exits 130 on SIGINT.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import ByPhone, client_for, contacts


async def main(url: str, journal: str, n: int) -> None:
    async with client_for(url) as client:
        job = client.bulk("create_contact", contacts(n), fields=["id"], journal=journal,
                          reconcile=ByPhone(client), concurrency=32)
        statuses: dict[int, str] = {}
        async with job:
            async for outcome in job:
                assert outcome.index not in statuses, f"index {outcome.index} twice"
                statuses[outcome.index] = outcome.status
    print(json.dumps({"statuses": statuses, "summary": job.report.summary()}), flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    except KeyboardInterrupt:
        sys.exit(130)
