"""sippet_async: the asyncio-native client for Sippet's HTTP RPC API.

Example:
    async with SippetClient() as client:          # key from $SIPPET_SECRET_KEY
        page = await client.run("list_contacts", fields=["id", "fullName"],
                                page={"limit": 20})
"""

from __future__ import annotations

__version__ = "0.1.0"

from sippet_async._client import RequestKeys, SippetClient
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
    RpcError,
    ServerError,
    SippetError,
    TransportError,
    TransportTimeoutError,
    UsageError,
)
from sippet_async._models import ErrorItem, KeysetPage, OffsetPage, RunResult, ValidationResult
from sippet_async._transport import AiohttpTransport, Transport

__all__ = [
    "ActionNotFoundError",
    "AiohttpTransport",
    "ApiKey",
    "AuthenticationError",
    "ClientClosedError",
    "ClientConfig",
    "ErrorItem",
    "ForbiddenError",
    "InvalidInputError",
    "KeysetPage",
    "NotFoundError",
    "OffsetPage",
    "OutcomeUnknownError",
    "ProtocolError",
    "RateLimitError",
    "RequestKeys",
    "ResponseTooLargeError",
    "RpcError",
    "RunResult",
    "ServerError",
    "SippetClient",
    "SippetError",
    "Timeouts",
    "Transport",
    "TransportError",
    "TransportTimeoutError",
    "UsageError",
    "ValidationResult",
    "__version__",
]
