"""sippet_async: the asyncio-native client for Sippet's HTTP RPC API.

Example:
    async with SippetClient() as client:          # key from $SIPPET_SECRET_KEY
        page = await client.run("list_contacts", fields=["id", "fullName"],
                                page={"limit": 20})
"""

from __future__ import annotations

from sippet_async._breaker import BreakerPolicy
from sippet_async._client import SippetClient
from sippet_async._config import ApiKey, ClientConfig, Timeouts
from sippet_async._errors import (
    ActionNotFoundError,
    AuthenticationError,
    ClientClosedError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    OutcomeUnknownError,
    ProtocolError,
    RateLimitError,
    ResponseTooLargeError,
    ResultTypeError,
    RpcError,
    ServerError,
    ServerUnreachableError,
    SippetError,
    TLSVerificationError,
    TransportError,
    TransportTimeoutError,
    UsageError,
)
from sippet_async._hooks import (
    BreakerEvent,
    CallEndEvent,
    CallStartEvent,
    Counters,
    Hooks,
    Observer,
    PauseEvent,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
)
from sippet_async._iterator import RecordIterator
from sippet_async._jobs._bulk import BulkJob
from sippet_async._jobs._report import BulkReport, Outcome
from sippet_async._jobs._worker import CallWorker
from sippet_async._limiter import Pushback, RateLimiter, SharesPauses
from sippet_async._models import ErrorItem, KeysetPage, OffsetPage, RunResult, ValidationResult
from sippet_async._ratelimit import RateLimit
from sippet_async._resources import Call, Contact, CreateCall, CreateContact, UpdateContact
from sippet_async._retry import RetryPolicy
from sippet_async._runner import RequestKeys
from sippet_async._transport import AiohttpTransport, Transport
from sippet_async._typed_methods import CallsResource, ContactsResource
from sippet_async._version import __version__
from sippet_async._walk import Page, ResumeToken

__all__ = [
    "ActionNotFoundError",
    "AiohttpTransport",
    "ApiKey",
    "AuthenticationError",
    "BreakerEvent",
    "BreakerPolicy",
    "BulkJob",
    "BulkReport",
    "Call",
    "CallEndEvent",
    "CallStartEvent",
    "CallWorker",
    "CallsResource",
    "ClientClosedError",
    "ClientConfig",
    "Contact",
    "ContactsResource",
    "Counters",
    "CreateCall",
    "CreateContact",
    "ErrorItem",
    "ForbiddenError",
    "Hooks",
    "InvalidInputError",
    "KeysetPage",
    "NotFoundError",
    "Observer",
    "OffsetPage",
    "Outcome",
    "OutcomeUnknownError",
    "Page",
    "PauseEvent",
    "ProtocolError",
    "Pushback",
    "RateLimit",
    "RateLimitError",
    "RateLimiter",
    "RecordIterator",
    "RequestEvent",
    "RequestKeys",
    "ResponseEvent",
    "ResponseTooLargeError",
    "ResultTypeError",
    "ResumeToken",
    "RetryEvent",
    "RetryPolicy",
    "RpcError",
    "RunResult",
    "ServerError",
    "ServerUnreachableError",
    "SharesPauses",
    "SippetClient",
    "SippetError",
    "TLSVerificationError",
    "Timeouts",
    "Transport",
    "TransportError",
    "TransportTimeoutError",
    "UpdateContact",
    "UsageError",
    "ValidationResult",
    "__version__",
]
