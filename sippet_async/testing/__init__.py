"""A fake Sippet RPC server for tests and demos, speaking docs/protocol.md over real HTTP.

Example:
    >>> async with FakeSippet("sk_test_1", seed_contacts=10) as server:
    ...     server.push_reply(Reply(status=503, headers={"Retry-After": "2"}))
    ...     ...  # run a client against server.url, then inspect server.requests

Where each rule lives:

* ``_error_objects`` — the wire error objects (§6.2, §6.3);
* ``_schema``  — resources, name casing, input casting, seed data (§3.7, §8, §12.6);
* ``_rules``   — field selection, filter, sort (§3.2 to §3.4);
* ``_pages``   — page options, offset and keyset pages, cursors (§5);
* ``_actions`` — the nine actions, ``/run`` and ``/validate`` (§3, §4, §7);
* ``_store``   — the in-memory tables;
* ``_faults``  — fault scripts and the rolling-window rate limit (§12.1);
* ``_records`` — :class:`RecordedRequest`, :class:`Reply` and :func:`worst_window`;
* ``_server``  — :class:`FakeSippet`: HTTP, auth, recording, scripts, idempotency;
* ``_serve``   — :func:`run_forever` / :func:`serve` for the CLI;
* ``_outage``  — :class:`Outage`: a proxy that crashes on demand, for outage tests;
* ``_redis``   — :class:`RedisServer`: a throwaway ``redis-server`` for the fleet's tests.

``pytest_plugin`` (public, not imported here: it needs pytest) gives pytest the fixtures
``sippet_server`` and ``sippet_client`` and the marker ``@pytest.mark.sippet(...)``.

Choices the fake makes where docs/protocol.md leaves room:

* lists sort by ``insertedAt`` ascending unless told otherwise; ``id`` always breaks ties;
* ``list_contacts`` defaults to keyset pages (limit 100); ``list_calls`` is unpaginated and
  ignores a ``page`` object (a non-object ``page`` is still ``invalid_pagination``);
* filter values are compared verbatim with SQL null semantics; operators: ``eq``, ``notEq``,
  ``in``, ``greaterThan[OrEqual]``, ``lessThan[OrEqual]``, ``isNil``, the Ash aliases, and
  ``has`` for ``tags``;
* ``/validate`` ignores unknown ``input`` keys (forms do); ``/run`` answers ``internal_error``;
* a non-uuid ``identity`` matches no record (update: ``not_found``; destroy: ``{}``);
* contact mutations expose metadata ``{"operation": "create" | "update" | "destroy"}``.
"""

from ._faults import Faults
from ._outage import Outage
from ._records import RecordedRequest, Reply, worst_window
from ._redis import RedisServer, RedisServerError
from ._serve import run_forever, serve
from ._server import DEFAULT_API_KEY, RUN_PATH, VALIDATE_PATH, FakeSippet

__all__ = [
    "DEFAULT_API_KEY",
    "FakeSippet",
    "Faults",
    "Outage",
    "RUN_PATH",
    "RecordedRequest",
    "RedisServer",
    "RedisServerError",
    "Reply",
    "VALIDATE_PATH",
    "run_forever",
    "serve",
    "worst_window",
]
