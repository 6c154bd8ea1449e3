"""What the iterator and the jobs call on a client: the ``Runner`` protocol.

``SippetClient`` implements it; ``_iterator`` and ``_jobs`` depend on this protocol instead
of the client class, so imports point one way: the client composes them, they never name
it. A test double for a consumer needs only these members.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Protocol, TypedDict, Unpack

import msgspec

from sippet_async._config import ClientConfig
from sippet_async._hooks import Counters
from sippet_async._models import RunResult

__all__ = ["ON_BEHALF_OF_A_JOB", "RequestKeys", "Runner"]


class RequestKeys(TypedDict, total=False):
    """The request keys of docs/protocol.md §3.1, snake_cased; sent camelCased, only if given."""

    input: Mapping[str, Any] | msgspec.Struct  # a Struct: CreateContact, UpdateContact, ...
    identity: Any
    fields: Sequence[str | Mapping[str, Any]]
    filter: Mapping[str, Any]
    sort: str | Sequence[str]
    page: Mapping[str, Any]
    metadata_fields: Sequence[str]
    get_by: Mapping[str, Any]
    tenant: str


class Runner(Protocol):
    """The client as its consumers see it: run an action, read the limits and counters,
    wait out an outage (its coroutine methods are written as methods returning awaitables,
    so this module stays free of async code)."""

    @property
    def config(self) -> ClientConfig:
        """The client's resolved configuration (``max_concurrency`` sizes the jobs)."""

    @property
    def counters(self) -> Counters:
        """The client's live counters (a bulk report snapshots them)."""

    def run(
        self, action: str, *, type: Any = None, idempotent: bool | None = None,
        idempotency_key: str | None = None, deadline: float | None = None,
        **keys: Unpack[RequestKeys],
    ) -> Awaitable[Any]:
        """Run ``action`` and return the envelope's ``data``."""

    def run_with_metadata(
        self, action: str, *, type: Any = None, idempotent: bool | None = None,
        idempotency_key: str | None = None, deadline: float | None = None,
        **keys: Unpack[RequestKeys],
    ) -> Awaitable[RunResult[Any]]:
        """Run ``action`` and return ``data`` with the reply's ``metadata``."""

    def wait_reachable(self, patience: float) -> Awaitable[bool]:
        """Wait until a request may go out; False once the server has been unreachable
        for ``patience`` seconds."""


# True in the tasks of a bulk job or call worker (set by ``_jobs._logs.job_logs``): there
# the job, not the request, has an item's last word, so the client logs an unknown outcome
# at INFO and the job logs a WARNING for each item that ends unknown.
ON_BEHALF_OF_A_JOB: ContextVar[bool] = ContextVar("sippet_async_job", default=False)
