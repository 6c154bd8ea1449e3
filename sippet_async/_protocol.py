"""The rules of the wire, with no I/O: request bytes in, typed results or typed errors out.

Everything here is pure and synchronous. It imports neither aiohttp nor asyncio (a test
pins that), so the client, the paginator, the bulk engine and the tests share one reading
of docs/protocol.md.
"""

from __future__ import annotations

import email.utils
import functools
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, TypeVar, cast

import msgspec

from sippet_async._config import check_token
from sippet_async._errors import (
    AuthenticationError,
    ProtocolError,
    RateLimitError,
    ServerError,
    SippetError,
    UsageError,
    rpc_error_for,
)
from sippet_async._mismatch import result_type_error
from sippet_async._models import (
    Envelope,
    ErrorItem,
    RunResult,
    TypedEnvelope,
    ValidationResult,
)

__all__ = [
    "RUN_PATH",
    "VALIDATE_PATH",
    "HttpRequest",
    "HttpResponse",
    "RateLimitHint",
    "decode_run",
    "decode_validate",
    "encode_payload",
    "error_for_status",
    "header",
    "is_read_action",
    "parse_rate_limit",
    "parse_retry_after",
]

T = TypeVar("T")

RUN_PATH: Final = "/rpc/public/run"  # docs/protocol.md §1.1
VALIDATE_PATH: Final = "/rpc/public/validate"
API_KEY_HEADER: Final = "x-api-key"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"  # §12.4
NO_HEADERS: Final[Mapping[str, str]] = MappingProxyType({})

_ENCODER: Final = msgspec.json.Encoder()
_ENVELOPE: Final = msgspec.json.Decoder(Envelope)
_ANY: Final = msgspec.json.Decoder()
_ANY_ENVELOPE: Final = msgspec.json.Decoder(TypedEnvelope[Any])
_MSGSPEC_PATH: Final = re.compile(r"at `(\$[^`]*)`")
# Decoding failures msgspec can raise on hostile bytes: malformed JSON, wrong shapes,
# out-of-range numbers (DecodeError/ValidationError), deep nesting (RecursionError) and
# invalid UTF-8 inside a string (UnicodeDecodeError, not a DecodeError) (§12.2).
_DECODE_FAILURES: Final = (msgspec.DecodeError, RecursionError, UnicodeDecodeError)
# RFC 9110 delta-seconds are digits; §12.1 also allows a decimal. float() alone would
# accept "1_000", "+5", "1e3", "inf", which are malformed and so count as absent.
_DELTA_SECONDS: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?")


# The two per-request records are frozen msgspec Structs rather than frozen dataclasses:
# built in C, they cost ~0.1 µs each instead of ~0.7 µs (a frozen dataclass sets every
# field through object.__setattr__), on a path that runs once per HTTP attempt.
class HttpRequest(msgspec.Struct, frozen=True):
    """One POST to send: ``headers`` and then ``extra_headers``. ``repr`` leaves the headers
    out: they carry the key.

    ``headers`` are the ones every request of a client carries, the same each time (the
    key, the content type); a transport may hold them in its session instead of sending
    them per request. ``extra_headers`` are this request's own (``Idempotency-Key``, §12.4),
    usually none.
    """

    url: str
    body: bytes
    headers: Mapping[str, str]
    extra_headers: Mapping[str, str] = NO_HEADERS

    def __repr__(self) -> str:
        return f"HttpRequest(url={self.url!r}, body=<{len(self.body)} bytes>)"


class HttpResponse(msgspec.Struct, frozen=True):
    """What came back: status, headers and the whole body.

    ``headers`` looks names up case-insensitively (RFC 9110 §5.1), as the ``Transport``
    contract requires: ``headers.get("Retry-After")`` finds ``retry-after`` too.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes


# The request keys of §3.1: Python name -> wire name (only these two are camelCased).
_WIRE_NAMES: Final[Mapping[str, str]] = {
    "input": "input", "identity": "identity", "fields": "fields", "filter": "filter",
    "sort": "sort", "page": "page", "metadata_fields": "metadataFields", "get_by": "getBy",
    "tenant": "tenant",
}
_PYTHON_NAMES: Final[Mapping[str, str]] = {wire: name for name, wire in _WIRE_NAMES.items()}
_MAPPING_KEYS: Final = frozenset({"input", "filter", "page", "get_by"})
_LIST_KEYS: Final = frozenset({"fields", "metadata_fields"})
# Action names already checked; a worker sends the same few names millions of times.
_CHECKED_ACTIONS: Final[set[str]] = set()
_MAX_CHECKED_ACTIONS: Final = 1024


def encode_payload(action: str, keys: Mapping[str, Any]) -> bytes:
    """The JSON body: the action first, then the keys given (None means not given), top-level
    names camelCased (§3.1); nested keys are sent as given.

    ``keys`` are request keys by their Python names (``metadata_fields``, ``get_by``, ...).
    ``input`` may also be a msgspec Struct (``CreateContact``): encoded by its own names, its
    UNSET fields left out.
    Everything is checked before any I/O (strict in what we send), in one pass that tries
    exact ``dict`` / ``list`` types before any slower ABC check: this runs once per call.

    Raises:
        UsageError: a bad action name, an unknown key, a value of the wrong shape, or one
            JSON cannot carry.
    """
    if type(action) is not str or action not in _CHECKED_ACTIONS:
        _check_action(action)
    payload: dict[str, Any] = {"action": action}
    for name, value in keys.items():
        wire = _WIRE_NAMES.get(name)
        if wire is None:  # a misspelt key is an error even when its value is None
            unknown = sorted(set(keys) - _WIRE_NAMES.keys())
            raise UsageError(f"unknown request key(s) {unknown}; "
                             f"expected some of {sorted(_WIRE_NAMES)}")
        if value is None:
            continue
        if name in _MAPPING_KEYS:
            # An input Struct (CreateContact, ...) is tested before the slower ABC check.
            if type(value) is not dict and not (
                name == "input" and isinstance(value, msgspec.Struct)
            ) and not isinstance(value, Mapping):
                raise UsageError(f"{name} must be a mapping (a JSON object), got {value!r}")
        elif name in _LIST_KEYS:
            if type(value) is not list and (
                isinstance(value, str | bytes) or not isinstance(value, Sequence)
            ):
                raise UsageError(
                    f"{name} must be a list, e.g. ['id', 'fullName'], got {value!r}")
        elif name == "sort":
            _check_sort(value)
        payload[wire] = value
    try:
        body = _ENCODER.encode(payload)
    except (TypeError, RecursionError, msgspec.EncodeError) as exc:  # a cycle: RecursionError
        raise UsageError(f"{action}: a request value cannot be sent as JSON: {exc}") from exc
    # JSON has no NaN or Infinity and the encoder writes them as null, which would change
    # what the caller meant (strict in what we send). A body without "null" cannot hold
    # one, so only a body that has it is walked: a search at C speed on every call.
    if b"null" in body:
        _check_finite(action, payload)
    return body


def _check_finite(action: str, payload: Mapping[str, Any]) -> None:
    """Raise UsageError naming a NaN or ±Infinity in a request by its key path."""
    # to_builtins: Structs, dataclasses and the like become dicts, floats stay as they are.
    plain = msgspec.to_builtins(payload)
    stack: list[tuple[str, Any]] = [
        (_PYTHON_NAMES.get(key, key), value) for key, value in plain.items()
    ]
    while stack:
        path, value = stack.pop()
        if isinstance(value, float):
            if not math.isfinite(value):
                raise UsageError(f"{action}: {path} is {value!r}, which JSON cannot carry; "
                                 "send a number, or null (None) for no value")
        elif isinstance(value, dict):
            stack.extend((f"{path}.{key}", item) for key, item in value.items())
        elif isinstance(value, list | tuple):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))


def _check_action(action: object) -> None:
    if not isinstance(action, str) or not action:
        raise UsageError(f"action must be a non-empty string, got {action!r}")
    check_token("action", action)
    if len(_CHECKED_ACTIONS) < _MAX_CHECKED_ACTIONS:
        _CHECKED_ACTIONS.add(str(action))  # str(): a subclass could change its hash


def _check_sort(value: object) -> None:
    if not (
        isinstance(value, str)
        or (isinstance(value, Sequence) and all(isinstance(item, str) for item in value))
    ):
        raise UsageError(f"sort must be a string or a list of strings, got {value!r}")


def is_read_action(action: str) -> bool:
    """Reads (``list_*``, ``get_*``) are idempotent and always safe to retry (§12.5)."""
    return action[:4] == "get_" or action[:5] == "list_"


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
    if _DELTA_SECONDS.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
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
    if response.status == 200:
        # Hot path: one pass straight into the caller's type (plain JSON without one).
        # Keeping ``data`` raw first costs a second scan of every byte (measured 1.26x the
        # bare decode in benchmarks/bench_decode.py); any failure falls through to the
        # exact two-pass reading below, which names the failing path.
        decoder = _ANY_ENVELOPE if type is None else _typed_envelope_decoder(cast(Any, type))
        try:
            typed = decoder.decode(response.body)
        except _DECODE_FAILURES:
            pass
        else:
            if typed.success and typed.data is not msgspec.UNSET:
                return RunResult(data=typed.data, metadata=typed.metadata)
    envelope = _decode_envelope(action, response)
    if not envelope.success:
        raise rpc_error_for(action, _require_errors(action, envelope))
    raw = envelope.data
    if not raw:
        return RunResult(data=cast(T, None), metadata=envelope.metadata)
    try:
        data = _decoder_for(cast(Any, type)).decode(raw)
    except _DECODE_FAILURES as exc:
        # Valid JSON that fails only the caller's part of the type: theirs to fix.
        mismatch = result_type_error(action, type, exc, raw)
        if mismatch is not None:
            raise mismatch from exc
        raise _protocol_error(action, "data does not match the expected type", exc,
                              response.body, root="$.data") from exc
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
        raise _protocol_error(action, "the reply is not a valid envelope", exc,
                              response.body) from exc


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


def _protocol_error(action: str, what: str, exc: BaseException, body: bytes, *,
                    root: str = "$") -> ProtocolError:
    """A ProtocolError in our own words: what is wrong and where (``path``, relative to the
    whole body; ``root`` is where the decoded document sits in it: ``$`` for the envelope,
    ``$.data`` for the data). The decoder's own text stays in ``__cause__`` only."""
    relative = _decoder_path(exc)
    path = root + relative[1:] if relative is not None else root
    reason = _reason(exc, body, envelope=root == "$")
    return ProtocolError(f"{action}: {what} at {path}: {reason}", status=200, path=path)


def _decoder_path(exc: BaseException) -> str | None:
    """The JSON path msgspec names in a ValidationError (``$.errors[0].vars``), if any.

    The one place we read msgspec's text: the path format is pinned by a contract test
    (tests/protocol/test_msgspec_contract.py), so a change in it fails there, clearly.
    """
    if not isinstance(exc, msgspec.ValidationError):
        return None
    found = _MSGSPEC_PATH.search(str(exc))
    return found.group(1) if found else None


def _reason(exc: BaseException, body: bytes, *, envelope: bool) -> str:
    """Why a reply could not be read, found by our own checks of the body."""
    if isinstance(exc, RecursionError):
        return "nesting too deep"
    utf8 = _utf8_problem(body)
    if utf8 is not None:
        return utf8
    kind = _json_kind(body)
    if kind is None:
        text = body.strip()
        if not text:
            return "the body is empty"
        if text.startswith(b"\xef\xbb\xbf"):
            return "the body begins with a byte-order mark, which JSON does not allow"
        if text.startswith(b"<"):
            return "the body is HTML or XML, not JSON"
        return "the body is not valid JSON"
    if not isinstance(exc, msgspec.ValidationError):
        return "the body is not valid JSON (malformed, truncated or followed by more text)"
    try:
        document = _ANY.decode(body)
    except msgspec.ValidationError:
        # Untyped decoding checks nothing but a number's range: the JSON itself holds one
        # beyond a 64-bit float or integer.
        return "a number is out of range"
    except _DECODE_FAILURES:
        document = None
    if envelope:
        problem = _envelope_problem(kind, document)
        if problem is not None:
            return problem
    return "a value has the wrong type, or a required key is missing"


def _utf8_problem(body: bytes) -> str | None:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"the body is not valid UTF-8 (byte 0x{body[exc.start]:02x} at offset {exc.start})"
    return None


_JSON_KINDS: Final = {ord("{"): "an object", ord("["): "an array", ord('"'): "a string",
                      ord("t"): "a boolean", ord("f"): "a boolean", ord("n"): "null"}


def _json_kind(body: bytes) -> str | None:
    """What the JSON document is, from its first byte; None if it cannot be JSON."""
    text = body.lstrip(b" \t\r\n")
    if not text:
        return None
    first = text[0]
    if first in _JSON_KINDS:
        return _JSON_KINDS[first]
    return "a number" if first == ord("-") or ord("0") <= first <= ord("9") else None


def _envelope_problem(kind: str, document: object) -> str | None:
    """What makes a JSON document not an envelope (§4, §6.1)."""
    if kind != "an object":
        return f"the reply is {kind}, not an envelope object"
    if not isinstance(document, dict):
        return None
    if "success" not in document:
        return "the reply has no `success` key"
    if not isinstance(document["success"], bool):
        return "`success` is neither true nor false"
    errors = document.get("errors")
    if errors is not None and not isinstance(errors, list):
        return "`errors` is not a list"
    return None


@functools.lru_cache(maxsize=256)
def _decoder_for(type: Any) -> msgspec.json.Decoder[Any]:
    """Decoders are built once per target type and reused."""
    return _ANY if type is None else msgspec.json.Decoder(type)


@functools.lru_cache(maxsize=256)
def _typed_envelope_decoder(type: Any) -> msgspec.json.Decoder[TypedEnvelope[Any]]:
    """A one-pass envelope decoder whose ``data`` is already ``type``; built once per type."""
    return msgspec.json.Decoder(TypedEnvelope[type])


# -- rate-limit hints (§12.1) -----------------------------------------------------------

# A "reset" beyond a day is an epoch timestamp (another convention) or nonsense: absent.
_HINT_MAX_RESET: Final = 86_400.0
_HINT_INT: Final = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True, slots=True)
class RateLimitHint:
    """What a reply's ``RateLimit-*`` headers say about the current window (§12.1).

    ``remaining`` requests are left until the window resets in ``reset`` seconds; ``limit``
    is the window's quota when the server sends it.
    """

    remaining: int
    reset: float
    limit: int | None = None


def parse_rate_limit(headers: Mapping[str, str]) -> RateLimitHint | None:
    """The rate-limit hint of a reply, or None when absent or malformed (§12.1).

    Reads the split form (``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset``)
    and the IETF ``RateLimit`` header, either ``limit=10, remaining=5, reset=3`` or
    ``"policy";r=5;t=3`` (the quota then comes from ``RateLimit-Policy: "policy";q=10``).
    ``headers`` looks names up case-insensitively (a reply's, by the ``Transport``
    contract), so a reply without a hint costs two lookups.
    """
    # Lower-case names: multidict folds a name to lower case to look it up, and a name that
    # is already lower case costs it no new string (2 fewer allocations per reply).
    remaining_text = headers.get("ratelimit-remaining")
    combined = headers.get("ratelimit")
    if remaining_text is None and combined is None:
        return None
    remaining = _hint_int(remaining_text)
    reset = _hint_seconds(headers.get("ratelimit-reset"))
    if remaining is not None and reset is not None:
        return _checked_hint(remaining, reset, _hint_int(headers.get("ratelimit-limit")))
    if combined is None:
        return None
    params = _hint_params(combined)
    if params is None:
        return None
    if "r" in params or "t" in params:  # the structured-field form of the later drafts
        policy = _hint_params(headers.get("ratelimit-policy", ""))
        limit = _hint_int((policy or {}).get("q"))
        return _checked_hint(_hint_int(params.get("r")), _hint_seconds(params.get("t")), limit)
    return _checked_hint(_hint_int(params.get("remaining")),
                         _hint_seconds(params.get("reset")), _hint_int(params.get("limit")))


def _checked_hint(remaining: int | None, reset: float | None,
                  limit: int | None) -> RateLimitHint | None:
    if remaining is None or reset is None or (limit is not None and remaining > limit):
        return None
    return RateLimitHint(remaining=remaining, reset=reset, limit=limit)


def _hint_int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    return int(text) if _HINT_INT.fullmatch(text) else None


def _hint_seconds(text: str | None) -> float | None:
    if text is None or not _DELTA_SECONDS.fullmatch(text.strip()):
        return None
    seconds = float(text)
    return seconds if seconds <= _HINT_MAX_RESET else None


def _hint_params(text: str) -> dict[str, str] | None:
    """``key=value`` pairs of the first list member (or of a comma-separated dictionary)."""
    members = [member.strip() for member in text.split(",")]
    if not members or not members[0]:
        return None
    if ";" in members[0] or members[0].startswith('"'):
        pieces = members[0].split(";")[1:]  # skip the policy name
    else:
        pieces = members
    params: dict[str, str] = {}
    for piece in pieces:
        key, sep, value = piece.partition("=")
        if not sep:
            return None
        params[key.strip().lower()] = value.strip()
    return params
