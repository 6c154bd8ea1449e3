"""The rules of the wire, with no I/O: request bytes in, typed results or typed errors out.

Everything here is pure and synchronous. It imports neither aiohttp nor asyncio (a test
pins that), so the client, the paginator, the bulk engine and the tests share one reading
of PROTOCOL.md.
"""

from __future__ import annotations

import email.utils
import functools
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, cast

import msgspec

from sippet_async._errors import (
    AuthenticationError,
    ProtocolError,
    RateLimitError,
    ServerError,
    SippetError,
    rpc_error_for,
)
from sippet_async._models import Envelope, ErrorItem, RpcRequest, RunResult, ValidationResult

__all__ = [
    "RUN_PATH",
    "VALIDATE_PATH",
    "HttpRequest",
    "HttpResponse",
    "decode_run",
    "decode_validate",
    "encode_payload",
    "error_for_status",
    "header",
    "is_read_action",
    "parse_retry_after",
]

T = TypeVar("T")

RUN_PATH: Final = "/rpc/public/run"  # PROTOCOL.md §1.1
VALIDATE_PATH: Final = "/rpc/public/validate"
API_KEY_HEADER: Final = "x-api-key"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"  # §12.4

_ENCODER: Final = msgspec.json.Encoder()
_ENVELOPE: Final = msgspec.json.Decoder(Envelope)
_ANY: Final = msgspec.json.Decoder()
_MSGSPEC_PATH: Final = re.compile(r"at `(\$[^`]*)`")
# Decoding failures msgspec can raise on hostile bytes: malformed JSON, wrong shapes,
# out-of-range numbers (DecodeError/ValidationError) and deep nesting (RecursionError).
_DECODE_FAILURES: Final = (msgspec.DecodeError, RecursionError)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One POST to send. ``repr`` leaves the headers out: they carry the key."""

    url: str
    body: bytes
    headers: Mapping[str, str] = field(repr=False)


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """What came back: status, headers (looked up case-insensitively) and the whole body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def encode_payload(payload: RpcRequest) -> bytes:
    """The JSON body: exactly the keys the caller gave, camelCased (§3.1)."""
    return _ENCODER.encode(payload)


def is_read_action(action: str) -> bool:
    """Reads (``list_*``, ``get_*``) are idempotent and always safe to retry (§12.5)."""
    return action.startswith(("list_", "get_"))


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header value by case-insensitive name, from any mapping."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date (§12.1).

    Malformed values count as absent; a date in the past means "now" (0.0).
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are always GMT
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_for_status(action: str, response: HttpResponse) -> SippetError | None:
    """The error a non-200 reply means, mapped by status first (§12.1); None for 200."""
    status = response.status
    if status == 200:
        return None
    if status in (401, 403):
        items = _try_error_items(response.body)
        detail = items[0].render() if items else f"HTTP {status}"
        return AuthenticationError(
            f"{action}: the API key was rejected (HTTP {status}: {detail})",
            status=status, errors=items,
        )
    retry_after = parse_retry_after(header(response.headers, "Retry-After"))
    if status == 429:
        hint = f"; retry after {retry_after:g}s" if retry_after is not None else ""
        return RateLimitError(f"{action}: rate limited (HTTP 429{hint})", retry_after=retry_after)
    if 500 <= status <= 599:
        return ServerError(f"{action}: server error (HTTP {status})", status=status,
                           retry_after=retry_after)
    if 300 <= status <= 399:
        # Redirects are never followed: the key must not travel to another origin (§12.1).
        return ProtocolError(
            f"{action}: unexpected redirect (HTTP {status}); redirects are not followed",
            status=status,
        )
    return ProtocolError(f"{action}: unexpected HTTP status {status}", status=status)


def decode_run(action: str, response: HttpResponse, type: type[T] | None = None) -> RunResult[T]:
    """Turn a ``/run`` reply into its data (as ``type`` when given) or raise its error."""
    envelope = _decode_envelope(action, response)
    if not envelope.success:
        raise rpc_error_for(action, _require_errors(action, envelope))
    raw = envelope.data
    if not raw:
        return RunResult(data=cast(T, None), metadata=envelope.metadata)
    try:
        data = _decoder_for(cast(Any, type)).decode(raw)
    except _DECODE_FAILURES as exc:
        raise _protocol_error(action, "data does not match the expected type", exc) from exc
    return RunResult(data=data, metadata=envelope.metadata)


def decode_validate(action: str, response: HttpResponse) -> ValidationResult:
    """Turn a ``/validate`` reply into a ValidationResult; only auth failures raise (§7)."""
    envelope = _decode_envelope(action, response)
    if envelope.success:
        return ValidationResult(ok=True)
    errors = _require_errors(action, envelope)
    error = rpc_error_for(action, errors)
    if isinstance(error, AuthenticationError):
        raise error
    return ValidationResult(ok=False, errors=tuple(errors))


def _decode_envelope(action: str, response: HttpResponse) -> Envelope:
    error = error_for_status(action, response)
    if error is not None:
        raise error
    try:
        return _ENVELOPE.decode(response.body)
    except _DECODE_FAILURES as exc:
        raise _protocol_error(action, "the reply is not a valid envelope", exc) from exc


def _require_errors(action: str, envelope: Envelope) -> list[ErrorItem]:
    if not envelope.errors:
        raise ProtocolError(f"{action}: success is false but the reply has no errors",
                            status=200, path="$.errors")
    return envelope.errors


def _try_error_items(body: bytes) -> tuple[ErrorItem, ...]:
    """Error items from a non-200 body if it happens to be an envelope (it may be HTML)."""
    try:
        envelope = _ENVELOPE.decode(body)
    except _DECODE_FAILURES:
        return ()
    return tuple(envelope.errors or ())


def _protocol_error(action: str, what: str, exc: BaseException) -> ProtocolError:
    reason = str(exc) if isinstance(exc, msgspec.DecodeError) else "nesting too deep"
    found = _MSGSPEC_PATH.search(reason)
    return ProtocolError(f"{action}: {what}: {reason}", status=200,
                         path=found.group(1) if found else "$")


@functools.lru_cache(maxsize=256)
def _decoder_for(type: Any) -> msgspec.json.Decoder[Any]:
    """Decoders are built once per target type and reused."""
    return _ANY if type is None else msgspec.json.Decoder(type)
