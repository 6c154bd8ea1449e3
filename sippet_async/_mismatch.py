"""Why a valid reply's ``data`` does not fit the caller's type: the ``ResultTypeError``.

A reply whose envelope is valid but whose ``data`` fails the caller's ``type=`` is not a
proxy or a server bug: the caller declared a shape the server does not send. This module
tells the two apart and names the place, in our own words (slow path only: it runs after
a decode has already failed). Pure: no I/O.
"""

from __future__ import annotations

import functools
import re
import types
import typing
from typing import Any, Final, Union

import msgspec

from sippet_async._errors import ResultTypeError
from sippet_async._models import KeysetPage, OffsetPage

__all__ = ["result_type_error"]

_ANY: Final = msgspec.json.Decoder()
_MSGSPEC_PATH: Final = re.compile(r"at `(\$[^`]*)`")
_SEGMENT: Final = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
# Generics of the library whose argument is the caller's record type (the pages of iter).
_PAGES: Final = (OffsetPage, KeysetPage)
# The record type iter uses when the caller gave none: the library's choice, not theirs.
_PLAIN_RECORD: Final = dict[str, Any]
_NOT_A_VALUE: Final = (type(None), msgspec.UnsetType)
_FAILURES: Final = (msgspec.DecodeError, RecursionError, UnicodeDecodeError)


def result_type_error(action: str, tp: Any, exc: BaseException,
                      raw: bytes) -> ResultTypeError | None:
    """The ``ResultTypeError`` for ``raw`` (a reply's ``data``) failing ``type``, or None
    when the data is malformed whatever the caller asked for (a ``ProtocolError`` then).

    ``tp`` is the caller's type and ``exc`` what decoding ``raw`` into it raised.
    """
    if tp is None or not isinstance(exc, msgspec.ValidationError):
        return None
    # msgspec names no path when the failure is at the root of what it decoded.
    relative_path = _decoder_path(exc) or "$"
    try:
        document = _ANY.decode(raw)
        shape = _shape(tp)
        if shape is not Any:  # the library's part of the type (a page) must still fit
            _decoder(shape).decode(raw)
    except _FAILURES:
        return None
    try:
        return _explain(action, tp, relative_path, document)
    except (TypeError, ValueError, AttributeError, LookupError, RecursionError):
        # An exotic type this walk cannot follow: the plain ProtocolError, with its path,
        # is still raised. Explaining a failure must never replace it with another one.
        return None


def _explain(action: str, tp: Any, relative_path: str, document: Any) -> ResultTypeError:
    """The error naming the field path, the type declared there and the value found."""
    segments = _segments(relative_path)
    expected = _type_at(tp, segments)
    value, found = _value_at(document, segments)
    got = _kind(value) if found else "nothing"
    if found and isinstance(value, dict) and _is_struct(expected):
        missing = _missing_field(expected, value)
        if missing is not None:  # msgspec points at the object that lacks a required key
            name, expected = missing
            relative_path += f".{name}"
            got = "nothing (the key is absent)"
    path = "$.data" + relative_path[1:]
    wanted = _name(expected) if expected is not None else "?"
    return ResultTypeError(
        f"{action}: the reply's data does not fit the caller's type {_name(tp)} at {path}: "
        f"expected {wanted}, got {got}. The reply is a valid envelope: it is the caller's "
        "type that disagrees with it (a field declared required, non-null or of another type)",
        path=path, expected=wanted, type=tp,
    )


@functools.lru_cache(maxsize=64)
def _decoder(shape: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(shape)


@functools.lru_cache(maxsize=64)
def _shape(tp: Any) -> Any:
    """``tp`` with the caller's part replaced by ``Any``: what any reply must fit.

    ``Contact`` and ``list[Contact]`` → ``Any``; iter's ``OffsetPage[Contact] |
    KeysetPage[Contact] | list[Contact]`` → ``OffsetPage[Any] | KeysetPage[Any] |
    list[Any]`` (the pages are the library's, the records the caller's); iter's own
    ``dict`` records stay as they are, since the caller chose nothing there.
    """
    if typing.get_origin(tp) in _PAGES:
        return _page_shape(tp)
    if not _is_union(tp) or not any(typing.get_origin(m) in _PAGES for m in typing.get_args(tp)):
        return Any
    shapes = [_page_shape(member) for member in typing.get_args(tp)]
    return Any if Any in shapes else Union[tuple(shapes)]  # noqa: UP007


def _page_shape(tp: Any) -> Any:
    """A page (or iter's plain-array alternative) with any records but the library's own."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin not in (*_PAGES, list) or len(args) != 1:
        return Any
    return origin[args[0] if args[0] == _PLAIN_RECORD else Any]


def _segments(path: str) -> list[str | int]:
    """``$[3].insertedAt`` → ``[3, "insertedAt"]``."""
    return [name if name else int(index) for name, index in _SEGMENT.findall(path[1:])]


def _type_at(tp: Any, segments: list[str | int]) -> Any:
    """The type declared at ``segments`` inside ``tp``; None when it cannot be told."""
    for segment in segments:
        tp = _step(tp, segment)
        if tp is None:
            return None
    return tp


def _is_union(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    return origin is Union or origin is types.UnionType


def _values(tp: Any) -> list[Any]:
    """The members of a union that are values (not None, not UNSET)."""
    return [member for member in typing.get_args(tp) if member not in _NOT_A_VALUE]


def _step(tp: Any, segment: str | int) -> Any:
    if _is_union(tp):
        found = {step for member in _values(tp) if (step := _step(member, segment)) is not None}
        return found.pop() if len(found) == 1 else None  # the pages agree: list[record]
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return Any
    if isinstance(segment, int):
        return (args[0] if args else Any) if origin in (list, tuple, set, frozenset) else None
    if origin is dict:
        return args[1] if args else Any
    if _is_struct(tp):
        return next((field.type for field in msgspec.structs.fields(tp)
                     if field.encode_name == segment), None)
    return None


def _is_struct(tp: Any) -> bool:
    if _is_union(tp):
        members = _values(tp)
        return len(members) == 1 and _is_struct(members[0])
    cls = typing.get_origin(tp) or tp
    return isinstance(cls, type) and issubclass(cls, msgspec.Struct)


def _missing_field(tp: Any, value: dict[str, Any]) -> tuple[str, Any] | None:
    if _is_union(tp):
        tp = _values(tp)[0]
    for field in msgspec.structs.fields(tp):
        if field.required and field.encode_name not in value:
            return field.encode_name, field.type
    return None


def _value_at(document: Any, segments: list[str | int]) -> tuple[Any, bool]:
    for segment in segments:
        if isinstance(segment, int):
            if not isinstance(document, list) or segment >= len(document):
                return None, False
            document = document[segment]
        elif isinstance(document, dict) and segment in document:
            document = document[segment]
        else:
            return None, False
    return document, True


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value!r:.40})"
    if isinstance(value, str):
        return f"a string ({value!r:.40})"
    return "an array" if isinstance(value, list) else "an object"


def _name(tp: Any) -> str:
    """A type as a reader writes it: ``str | None``, ``list[Contact]``; UNSET is left out
    (it means "not selected", never a value on the wire)."""
    if _is_union(tp):
        return " | ".join(_name(arg) for arg in typing.get_args(tp)
                          if arg is not msgspec.UnsetType)
    if tp is None or tp is type(None):
        return "None"
    if tp is Any:
        return "Any"
    origin = typing.get_origin(tp)
    if origin is not None:
        return f"{_name(origin)}[{', '.join(_name(arg) for arg in typing.get_args(tp))}]"
    return str(getattr(tp, "__qualname__", None) or repr(tp))


def _decoder_path(exc: msgspec.ValidationError) -> str | None:
    """The path msgspec names in its message (``$[3].insertedAt``); the format is pinned by
    tests/protocol/test_msgspec_contract.py, like ``_protocol``'s reading of it."""
    found = _MSGSPEC_PATH.search(str(exc))
    return found.group(1) if found else None
