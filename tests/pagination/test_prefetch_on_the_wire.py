"""The prefetch reaches the server while the caller reads the page before it, even when the
caller never awaits between records (a CPU-bound loop: a CSV writer, a transform).

The server runs in threads of its own, so it sees what the client has written while the
client's event loop is blocked: the test blocks that loop inside the first record and waits
(on an event, not a clock) for the next page's request to arrive.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sippet_async import SippetClient

pytestmark = pytest.mark.usefixtures("handout")  # each hand-out of records (conftest)

KEY = "sk_test_prefetch_suite_0123456789"
SIZE = 5  # records per page
PAGES = 3
WAIT = 10.0  # seconds; reached only when the request was never sent


class _Pages(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.arrived = [threading.Event() for _ in range(PAGES)]
        self.count = 0
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    """Offset pages of SIZE records (docs/protocol.md §5), PAGES of them, then the end."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the client's pool expects
    server: _Pages

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        offset = body.get("page", {}).get("offset", 0)
        with self.server.lock:
            number = self.server.count
            self.server.count += 1
        results = [{"id": f"c{offset + i}"} for i in range(SIZE)]
        data = {"type": "offset", "results": results, "limit": SIZE, "offset": offset,
                "count": None, "hasMore": offset + SIZE < SIZE * PAGES}
        reply = json.dumps({"success": True, "data": data}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
        self.wfile.flush()
        if number < PAGES:
            self.server.arrived[number].set()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads the events, not the log."""


@contextmanager
def pages_server() -> Iterator[_Pages]:
    server = _Pages()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_next_page_is_requested_before_the_first_record_is_handed_out() -> None:
    with pages_server() as server:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        async with SippetClient(KEY, base_url=url) as client:
            seen: list[str] = []
            async for record in client.iter("list_contacts", fields=["id"], page_size=SIZE):
                if len(seen) % SIZE == 0 and len(seen) // SIZE + 1 < PAGES:
                    # This loop is blocked here: only a request already written can arrive.
                    page = len(seen) // SIZE
                    assert server.arrived[page + 1].wait(WAIT), (
                        f"page {page + 2} was not requested while page {page + 1} was read")
                seen.append(record["id"])
    assert seen == [f"c{i}" for i in range(SIZE * PAGES)]
    assert server.count == PAGES
