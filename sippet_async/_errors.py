"""The one exception tree of sippet_async, split by what the caller should do.

```
SippetError
├── UsageError (also ValueError)   bad arguments or config, raised before any I/O
├── ClientClosedError              the client was used after aclose()
├── TransportError                 connection failed / reset / timed out
│   ├── TransportTimeoutError      also a builtin TimeoutError
│   ├── TLSVerificationError       the server's certificate was refused (never retried)
│   └── ServerUnreachableError     not sent: the breaker holds requests back during an outage
├── ProtocolError                  a reply that is not a valid envelope
│   ├── ResponseTooLargeError      the reply exceeded the client's size cap
│   └── ResultTypeError            a valid reply whose data does not fit the caller's type=
├── AuthenticationError            HTTP 401/403, authentication_failed / invalid_token
├── RateLimitError                 HTTP 429; .retry_after
├── ServerError                    HTTP 5xx; .status, .retry_after
├── OutcomeUnknownError            a write failed after it may have executed
└── RpcError                       success: false; .errors, .action
    ├── NotFoundError              not_found
    ├── ForbiddenError             forbidden, forbidden_field
    ├── ActionNotFoundError        action_not_found
    └── InvalidInputError          validation and request-shape errors (docs/protocol.md §6.4)
```

No aiohttp or msgspec exception ever reaches a caller: the transport and the protocol
module translate them here, chained with ``from``. ``is_fatal`` says which of them no retry
can fix: a bulk job, an import or a call worker stops at the first one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, TypeGuard

if TYPE_CHECKING:
    from sippet_async._models import ErrorItem

__all__ = [
    "ActionNotFoundError",
    "AuthenticationError",
    "ClientClosedError",
    "ForbiddenError",
    "InvalidInputError",
    "NotFoundError",
    "OutcomeUnknownError",
    "ProtocolError",
    "RateLimitError",
    "ResponseTooLargeError",
    "ResultTypeError",
    "RpcError",
    "ServerError",
    "ServerUnreachableError",
    "SippetError",
    "TLSVerificationError",
    "TransportError",
    "TransportTimeoutError",
    "UsageError",
    "is_fatal",
    "rpc_error_for",
]


class SippetError(Exception):
    """Base class of every error raised by sippet_async."""


class UsageError(SippetError, ValueError):
    """An argument or a config value is wrong; raised before any I/O."""


class ClientClosedError(SippetError, RuntimeError):
    """The client was used after ``aclose()``."""


class TransportError(SippetError):
    """The HTTP exchange failed: connection refused, reset, DNS failure or timeout.

    ``sent`` says whether the request may have reached the server: ``False`` only when the
    failure provably happened before any byte was written (refused, DNS, connect timeout,
    a proxy that refused the tunnel, a pooled connection already closed before the write).
    """

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class TransportTimeoutError(TransportError, TimeoutError):
    """A connect, read or total timeout expired."""


class TLSVerificationError(TransportError):
    """The server's TLS certificate failed verification (unknown CA, wrong hostname, expired).

    Permanent until the configuration changes, so never retried; nothing was sent
    (``sent`` is False). Trust a private CA with ``SippetClient(ssl=...)``.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, sent=False)


class ServerUnreachableError(TransportError):
    """Not sent: attempts got no answer (refused, reset, timed out), so the client's
    breaker lets only one probe at a time through until it answers again.

    ``sent`` is always ``False``; the call is retried by its policy like a refused
    connection. ``__cause__`` is the last failure that kept the breaker open, if any.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, sent=False)


class ProtocolError(SippetError):
    """The server's reply is not a valid Sippet envelope (or has an unexpected status)."""

    def __init__(self, message: str, *, status: int | None = None, path: str = "$") -> None:
        super().__init__(message)
        self.status = status
        self.path = path


class ResponseTooLargeError(ProtocolError):
    """The reply body exceeded the client's ``max_response_bytes``; it was not read."""


class ResultTypeError(ProtocolError):
    """The reply is a valid envelope, but its ``data`` does not fit the type the caller
    asked for (``type=``, or a typed method's record): the caller's type disagrees with
    what the server sends, which is usually a fix in the caller's Struct, not a server bug.

    ``path`` is where in the body it failed (``$.data.results[3].insertedAt``),
    ``expected`` the type declared there (``"datetime"``), ``type`` the caller's type.
    """

    def __init__(self, message: str, *, path: str, expected: str, type: object) -> None:
        super().__init__(message, status=200, path=path)
        self.expected = expected
        self.type = type


class AuthenticationError(SippetError):
    """The API key was rejected (HTTP 401/403 or an authentication error item)."""

    def __init__(self, message: str, *, status: int | None = None,
                 errors: Sequence[ErrorItem] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.errors = tuple(errors)


class RateLimitError(SippetError):
    """HTTP 429. ``retry_after`` is the server's wait in seconds, or ``None`` if absent."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServerError(SippetError):
    """HTTP 5xx. ``status`` is the code; ``retry_after`` is set when a 503 carries one."""

    def __init__(self, message: str, *, status: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class OutcomeUnknownError(SippetError):
    """A write failed in a way that leaves unknown whether it executed; it was not re-sent.

    The underlying failure is ``__cause__``. Reconcile (look the record up) before retrying.
    """

    def __init__(self, message: str, *, action: str) -> None:
        super().__init__(message)
        self.action = action


class RpcError(SippetError):
    """The server answered ``success: false``. ``errors`` holds every item it sent."""

    def __init__(self, action: str, errors: Sequence[ErrorItem]) -> None:
        self.action = action
        self.errors: tuple[ErrorItem, ...] = tuple(errors)
        super().__init__(_summary(action, self.errors))

    @property
    def first(self) -> ErrorItem | None:
        """The first error item, the one ``str(error)`` describes."""
        return self.errors[0] if self.errors else None


class NotFoundError(RpcError):
    """The record does not exist (``not_found``)."""


class ForbiddenError(RpcError):
    """The key may not do this (``forbidden``, ``forbidden_field``)."""


class ActionNotFoundError(RpcError):
    """No RPC action has this name (``action_not_found``)."""


class InvalidInputError(RpcError):
    """The input or the request shape was rejected (validation and §6.4 request errors)."""


def _summary(action: str, errors: Sequence[ErrorItem]) -> str:
    if not errors:
        return f"{action}: the server reported failure without details"
    first = errors[0]
    label = first.type or first.code or "error"
    where = f" ({', '.join(first.fields)})" if first.fields else ""
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{action}: {label}: {first.render()}{where}{more}"


# docs/protocol.md §6.4: which error item types select which subclass.
_NOT_FOUND: Final = frozenset({"not_found"})
_FORBIDDEN: Final = frozenset({"forbidden", "forbidden_field", "load_not_allowed", "load_denied"})
_ACTION_NOT_FOUND: Final = frozenset({"action_not_found"})
_AUTH: Final = frozenset({"authentication_failed", "invalid_token"})
_INVALID_INPUT: Final = frozenset({
    "required", "invalid_attribute", "invalid_argument", "invalid_changes", "invalid_query",
    "invalid_keyset", "invalid_page", "invalid_primary_key",
    "missing_required_parameter", "invalid_input_format", "invalid_fields_type",
    "empty_fields_array", "invalid_pagination", "unknown_field", "unknown_map_field",
    "unknown_union_field", "invalid_field_format", "invalid_calculation_args",
    "requires_field_selection", "invalid_field_selection", "field_does_not_support_nesting",
    "duplicate_field", "unsupported_field_combination", "invalid_union_input",
    "missing_identity", "invalid_identity", "missing_required_input",
    "unexpected_get_by_fields", "field_validation_error", "tenant_required",
})


def rpc_error_for(action: str, errors: Sequence[ErrorItem]) -> SippetError:
    """Pick the exception for a ``success: false`` envelope, by its first typed item."""
    # An item may lack ``type``; only then does a ``code`` name it (docs/protocol.md §6.3, §12.3).
    kind = next((e.type for e in errors if e.type), None) or next(
        (e.code for e in errors if e.code), None
    )
    if kind in _AUTH:
        return AuthenticationError(_summary(action, errors), errors=errors)
    if kind in _NOT_FOUND:
        return NotFoundError(action, errors)
    if kind in _FORBIDDEN:
        return ForbiddenError(action, errors)
    if kind in _ACTION_NOT_FOUND:
        return ActionNotFoundError(action, errors)
    if kind in _INVALID_INPUT:
        return InvalidInputError(action, errors)
    return RpcError(action, errors)


# No RPC endpoint at the client's URL: every request gets the same answer.
_NO_ENDPOINT: Final = frozenset({404, 405})


def is_fatal(error: BaseException) -> TypeGuard[SippetError]:
    """True when every further request of the client would fail the same way.

    The rule: the error is about the key, the URL or the action, never about the item, so
    no retry and no other item can succeed. A bulk job, an import and a call worker stop
    at the first such error instead of sending the rest.
    """
    if isinstance(error, AuthenticationError | ActionNotFoundError):
        return True  # the key was rejected; the action does not exist (docs/protocol.md §6.4)
    if isinstance(error, TLSVerificationError):
        return True  # the server's certificate is refused: so it will be for every item
    if isinstance(error, ProtocolError) and error.status is not None:
        # A redirect is never followed (the key must not travel), and 404/405 means the
        # base URL points at no RPC endpoint: docs/protocol.md §12.1.
        return 300 <= error.status <= 399 or error.status in _NO_ENDPOINT
    return False
