"""msgspec Structs for the wire shapes of replies: the envelope, error items, pages.

Incoming shapes ignore unknown keys and default whatever may be missing (docs/protocol.md §12.3:
be liberal). The outgoing payload is a plain dict built by ``_protocol.encode_payload``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import msgspec

__all__ = [
    "ErrorItem",
    "KeysetPage",
    "OffsetPage",
    "RunResult",
    "ValidationResult",
]

T = TypeVar("T")

_PLACEHOLDER = re.compile(r"%\{([A-Za-z0-9_]+)\}")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class ErrorItem(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One item of an envelope's ``errors`` (docs/protocol.md §6.2, §6.3); every key may be absent.

    ``render()`` gives the message with its ``%{placeholders}`` filled from ``vars``.
    """

    type: str | None = None
    code: str | None = None
    message: str = ""
    short_message: str = ""
    if TYPE_CHECKING:
        vars: dict[str, Any] = {}
        fields: tuple[str, ...] = ()
        path: tuple[Any, ...] = ()
    else:
        # On the wire each of these may also be null, which reads as empty (liberal in
        # what we accept, docs/protocol.md §12.3); __post_init__ makes it so, and the
        # declared types above are what every ErrorItem holds.
        vars: dict[str, Any] | None = {}
        fields: tuple[str, ...] | None = ()
        path: tuple[Any, ...] | None = ()
    details: dict[str, Any] | None = None
    error_id: str | None = None

    def __post_init__(self) -> None:
        if self.vars is None:
            msgspec.structs.force_setattr(self, "vars", {})
        if self.fields is None:
            msgspec.structs.force_setattr(self, "fields", ())
        if self.path is None:
            msgspec.structs.force_setattr(self, "path", ())

    @property
    def kind(self) -> str:
        """``type``, falling back to ``code`` for the untyped internal errors of §6.3."""
        return self.type or self.code or "unknown_error"

    def render(self) -> str:
        """The message with ``%{name}`` filled from ``vars``.

        Placeholders are snake_case while ``vars`` keys are camelCased (§6.2), so both
        spellings are tried; an unknown placeholder is left as it is.
        """
        if not self.message:
            return self.short_message or self.kind

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            for key in (name, _camel(name)):
                if key in self.vars:
                    value = self.vars[key]
                    if isinstance(value, list):
                        return ", ".join(str(v) for v in value)
                    return str(value)
            return match.group(0)

        return _PLACEHOLDER.sub(fill, self.message)


class Envelope(msgspec.Struct, frozen=True):
    """The reply to every RPC: ``data`` stays raw until the caller's type is known."""

    success: bool
    data: msgspec.Raw = msgspec.Raw(b"")
    errors: list[ErrorItem] | None = None
    metadata: dict[str, Any] | None = None


class TypedEnvelope(msgspec.Struct, Generic[T], frozen=True):
    """A success envelope whose ``data`` decodes straight into the caller's type."""

    success: bool
    data: T | msgspec.UnsetType = msgspec.UNSET
    metadata: dict[str, Any] | None = None


class RunResult(msgspec.Struct, Generic[T], frozen=True):
    """``data`` plus the top-level ``metadata`` a mutation may return (§3.6)."""

    data: T
    metadata: dict[str, Any] | None = None


class ValidationResult(msgspec.Struct, frozen=True):
    """What ``/validate`` said: ``ok`` and, when not ok, the ``errors``."""

    ok: bool
    errors: tuple[ErrorItem, ...] = ()

    def __bool__(self) -> bool:
        return self.ok


class OffsetPage(msgspec.Struct, Generic[T], frozen=True, tag="offset", tag_field="type",
                 rename="camel"):
    """An offset page (§5.2)."""

    results: list[T]
    has_more: bool = False
    limit: int | None = None
    offset: int = 0
    count: int | None = None


class KeysetPage(msgspec.Struct, Generic[T], frozen=True, tag="keyset", tag_field="type",
                 rename="camel"):
    """A keyset page (§5.3); cursors are opaque and passed back unchanged."""

    results: list[T]
    has_more: bool = False
    limit: int | None = None
    after: str | None = None
    before: str | None = None
    count: int | None = None
    previous_page: str | None = None
    next_page: str | None = None

