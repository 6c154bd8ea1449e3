"""Whatever the bytes, decoding raises only sippet_async errors (docs/protocol.md §12.2).

The two bodies too large to store as samples (a 100,000-deep nesting, a multi-megabyte
reply) are generated here; hypothesis covers arbitrary bytes and arbitrary JSON.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sippet_async._errors import AuthenticationError, ProtocolError, SippetError
from sippet_async._models import KeysetPage, OffsetPage
from sippet_async._protocol import HttpResponse, decode_run, decode_validate, parse_retry_after

DEPTH = 100_000

# No example database: these tests must not leave files in the work tree.
PROPERTY = settings(
    max_examples=200, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


class Contact(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A minimal typed target, so typed decoding is fuzzed too."""

    id: str
    full_name: str | None = None


TYPES: list[Any] = [None, list[Contact], Contact, OffsetPage[Contact] | KeysetPage[Contact]]

Decode = Callable[[HttpResponse], object]
DECODERS: list[tuple[str, Decode]] = [
    *[(f"run[{t!r}]", lambda r, t=t: decode_run("list_contacts", r, t)) for t in TYPES],
    ("validate", lambda r: decode_validate("list_contacts", r)),
]


def _only_sippet_errors(response: HttpResponse) -> None:
    """Every decoder either returns or raises a SippetError; nothing else escapes."""
    for _, decode in DECODERS:
        with contextlib.suppress(SippetError):
            decode(response)


def _ok(body: bytes, status: int = 200) -> HttpResponse:
    return HttpResponse(status=status, headers={}, body=body)


def _nested(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * depth + inner + b"]" * depth


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (_nested(DEPTH), "the reply is an array, not an envelope object"),
        (b'{"extra": ' + _nested(DEPTH) + b', "success": true, "data": []}', "nesting too deep"),
        (b'{"success": true, "data": ' + _nested(DEPTH) + b"}", "nesting too deep"),
        (
            b'{"success": false, "errors": [{"vars": {"x": ' + _nested(DEPTH) + b"}}]}",
            "nesting too deep",
        ),
        (
            b'{"success": true, "data": ' + b'{"a":' * DEPTH + b"1" + b"}" * DEPTH + b"}",
            "nesting too deep",
        ),
    ],
    ids=["whole-body", "unknown-key", "in-data", "in-error-vars", "objects-in-data"],
)
def test_deep_nesting_is_a_protocol_error(body: bytes, reason: str) -> None:
    """A 100,000-deep nesting anywhere gives ProtocolError, never RecursionError (§12.2)."""
    for typ in TYPES:
        with pytest.raises(ProtocolError) as info:
            decode_run("list_contacts", _ok(body), typ)
        assert info.value.path.startswith("$")
        assert reason in str(info.value)


def test_deep_nesting_on_validate_raises_only_protocol_error() -> None:
    """/validate of a deep body raises ProtocolError (or succeeds: it never reads data)."""
    with pytest.raises(ProtocolError):
        decode_validate("create_contact", _ok(_nested(DEPTH)))
    _only_sippet_errors(_ok(b'{"success": true, "data": ' + _nested(DEPTH) + b"}"))


@pytest.mark.parametrize(
    "literal", [b"1e400", b"-1e400", b"1" * 5000, b"1." + b"0" * 5000 + b"1e999999999"]
)
def test_huge_numbers_never_escape(literal: bytes) -> None:
    """Numbers beyond a double or a 64-bit int raise only ProtocolError, if anything."""
    _only_sippet_errors(_ok(b'{"success": true, "data": {"n": ' + literal + b"}}"))
    _only_sippet_errors(_ok(b'{"success": ' + literal + b"}"))
    _only_sippet_errors(_ok(b'{"success": false, "errors": [{"vars": {"n": ' + literal + b"}}]}"))


def test_invalid_utf8_everywhere_is_a_protocol_error() -> None:
    """Invalid UTF-8 in a key, a value, an error, or a non-200 body never escapes (§12.2)."""
    bodies = [
        b'{"succ\xffess": true}',
        b'{"success": true, "data": {"k\xc3": 1}}',
        b'{"success": true, "data": ["\xed\xa0\x80"]}',  # an encoded surrogate
        b'{"success": false, "errors": [{"message": "\xc0\xaf"}]}',
        b"\xff" * 64,
    ]
    for body in bodies:
        for status in (200, 401, 429, 503):
            _only_sippet_errors(_ok(body, status))


def test_large_body_decodes() -> None:
    """A multi-megabyte page decodes (size is capped by the transport, not here)."""
    results = [{"id": f"{i:08d}", "fullName": "x" * 100} for i in range(30_000)]
    page = {
        "type": "offset",
        "results": results,
        "hasMore": False,
        "limit": 30_000,
        "offset": 0,
        "count": None,
    }
    body = json.dumps({"success": True, "data": page}).encode()
    assert len(body) > 3_000_000
    decoded = decode_run("list_contacts", _ok(body), OffsetPage[Contact]).data
    assert len(decoded.results) == 30_000


@PROPERTY
@given(body=st.binary(max_size=512), status=st.sampled_from([200, 200, 200, 401, 429, 503, 418]))
def test_arbitrary_bytes_raise_only_sippet_errors(body: bytes, status: int) -> None:
    """Any bytes with any status: a result or a SippetError, nothing else (§12.2)."""
    _only_sippet_errors(_ok(body, status))


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_JSON = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)
_ERROR_KEYS = st.sampled_from(
    ["type", "code", "message", "shortMessage", "vars", "fields", "path", "details", "errorId"]
)
_ERROR_ITEM = st.dictionaries(_ERROR_KEYS | st.text(max_size=6), _JSON, max_size=6)
_ENVELOPE = st.fixed_dictionaries(
    {"success": st.booleans() | _JSON},
    optional={
        "data": _JSON,
        "errors": st.lists(_ERROR_ITEM, max_size=3) | _JSON,
        "metadata": _JSON,
    },
)


@PROPERTY
@given(value=_JSON | _ENVELOPE)
def test_arbitrary_json_raises_only_sippet_errors(value: Any) -> None:
    """Any JSON value as a body, envelope-shaped or not: a result or a SippetError."""
    _only_sippet_errors(_ok(json.dumps(value).encode()))


@PROPERTY
@given(value=_ENVELOPE, data=st.data())
def test_corrupted_envelopes_raise_only_sippet_errors(value: Any, data: st.DataObject) -> None:
    """An envelope with a few bytes overwritten (often invalid UTF-8 inside a string)."""
    body = bytearray(json.dumps(value, ensure_ascii=False).encode())
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        at = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
        body[at] = data.draw(st.integers(min_value=0x80, max_value=0xFF) | st.integers(0, 0xFF))
    _only_sippet_errors(_ok(bytes(body)))


_RENDERABLE_ITEM = st.fixed_dictionaries(
    {},
    optional={
        "type": st.text(max_size=10) | st.none(),
        "code": st.text(max_size=10) | st.none(),
        "message": st.text(alphabet="%{}_ab", max_size=30),
        "shortMessage": st.text(max_size=10),
        "vars": st.dictionaries(st.text(alphabet="_ab", max_size=5), _JSON, max_size=4),
        "fields": st.lists(st.text(max_size=5), max_size=3),
        "path": st.lists(st.text(max_size=5) | st.integers(), max_size=3),
    },
)


@PROPERTY
@given(items=st.lists(_RENDERABLE_ITEM, min_size=1, max_size=4))
def test_any_well_formed_error_envelope_raises_with_every_item(items: list[Any]) -> None:
    """success:false with well-typed items raises, keeping every item; str() never fails."""
    body = json.dumps({"success": False, "errors": items}).encode()
    with pytest.raises(SippetError) as info:
        decode_run("get_contact", _ok(body))
    assert len(getattr(info.value, "errors")) == len(items)  # noqa: B009
    assert str(info.value).startswith("get_contact")
    sent = getattr(info.value, "errors")  # noqa: B009
    if isinstance(info.value, AuthenticationError):
        # Only authentication failures raise on /validate (§7).
        with pytest.raises(AuthenticationError) as auth:
            decode_validate("get_contact", _ok(body))
        assert auth.value.errors == sent
    else:
        result = decode_validate("get_contact", _ok(body))
        assert not result.ok
        assert result.errors == sent


@PROPERTY
@given(value=st.text(max_size=40) | st.none())
def test_parse_retry_after_never_raises(value: str | None) -> None:
    """Any header text gives None or a finite, non-negative number of seconds."""
    seconds = parse_retry_after(value, now=1_700_000_000.0)
    assert seconds is None or (seconds >= 0 and seconds != float("inf"))
