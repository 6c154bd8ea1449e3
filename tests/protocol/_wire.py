"""Load the hand-written wire samples of ``tests/wire/`` and check replies against them.

The sample format is described in ``tests/wire/README.md``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec
import pytest

from sippet_async import _errors
from sippet_async._models import ErrorItem
from sippet_async._protocol import HttpResponse

WIRE_DIR: Final = Path(__file__).resolve().parents[1] / "wire"
GROUPS: Final = ("success", "errors", "status", "malformed")

# Keys an expectation may carry; a typo in a sample must fail loudly, not be ignored.
_RAISE_KEYS: Final = frozenset(
    {
        "raises",
        "kinds",
        "rendered",
        "status",
        "path",
        "path_startswith",
        "retry_after",
        "message_contains",
    }
)
RUN_KEYS: Final = frozenset({"data", "metadata"})
VALIDATE_KEYS: Final = frozenset({"ok", "kinds"})
_BODY_KEYS: Final = ("body", "body_text", "body_base64")


@dataclass(frozen=True)
class Sample:
    """One wire sample: the reply to decode and what each endpoint must make of it."""

    name: str
    about: str
    action: str
    response: HttpResponse
    body_json: Any  # the parsed ``body`` when the sample gives one as a JSON value
    run: dict[str, Any]
    validate: dict[str, Any]


def _body_bytes(raw: dict[str, Any], name: str) -> bytes:
    given = [key for key in _BODY_KEYS if key in raw]
    assert len(given) == 1, f"{name}: give exactly one of {_BODY_KEYS}, got {given}"
    key = given[0]
    if key == "body":
        return json.dumps(raw["body"], ensure_ascii=False, separators=(",", ":")).encode()
    if key == "body_text":
        return str(raw["body_text"]).encode()
    return base64.b64decode(raw["body_base64"], validate=True)


def load(group: str) -> list[Sample]:
    """Every sample of one group (a folder of ``tests/wire/``), sorted by file name."""
    samples = []
    for path in sorted((WIRE_DIR / group).glob("*.json")):
        raw = json.loads(path.read_text(encoding="utf-8"))
        name = f"{group}/{path.stem}"
        expect = raw["expect"]
        assert set(expect) == {"run", "validate"}, f"{name}: expect needs run and validate"
        samples.append(
            Sample(
                name=name,
                about=raw["about"],
                action=raw["action"],
                response=HttpResponse(
                    status=raw["status"], headers=dict(raw["headers"]), body=_body_bytes(raw, name)
                ),
                body_json=raw.get("body"),
                run=expect["run"],
                validate=expect["validate"],
            )
        )
    return samples


def params(*groups: str) -> list[Any]:
    """``pytest.param`` per sample of the given groups, with the sample name as its id."""
    return [pytest.param(s, id=s.name) for group in groups for s in load(group)]


def error_class(name: str) -> type[Exception]:
    """The exception class a sample names, looked up in the one exception tree."""
    cls = getattr(_errors, name, None)
    assert isinstance(cls, type), name
    assert issubclass(cls, _errors.SippetError), name
    return cls


def check_raised(exc: Exception, expect: dict[str, Any]) -> None:
    """Assert an exception matches a sample's ``raises`` expectation, key by key."""
    unknown = set(expect) - _RAISE_KEYS
    assert not unknown, f"unknown expectation keys {unknown}"
    assert type(exc) is error_class(expect["raises"]), f"{type(exc).__name__}: {exc}"
    items: tuple[ErrorItem, ...] = getattr(exc, "errors", ())
    if "kinds" in expect:
        assert [item.kind for item in items] == expect["kinds"]
    if "rendered" in expect:
        assert [item.render() for item in items] == expect["rendered"]
    if "status" in expect:
        assert getattr(exc, "status") == expect["status"]  # noqa: B009 - not every class has it
    if "path" in expect:
        assert getattr(exc, "path") == expect["path"]  # noqa: B009
    if "path_startswith" in expect:
        assert getattr(exc, "path").startswith(expect["path_startswith"])  # noqa: B009
    if "retry_after" in expect:
        retry_after = getattr(exc, "retry_after")  # noqa: B009
        if expect["retry_after"] == "positive":
            assert isinstance(retry_after, float)
            assert retry_after > 0
        else:
            assert retry_after == expect["retry_after"]
    for text in expect.get("message_contains", ()):
        assert text in str(exc), f"{text!r} not in {str(exc)!r}"
    cause = exc.__cause__
    if isinstance(cause, msgspec.MsgspecError) and str(cause):
        # Our message is our own words; the decoder's text stays in __cause__ only.
        assert str(cause) not in str(exc), f"decoder text copied into {str(exc)!r}"


def check_result_keys(expect: dict[str, Any], allowed: frozenset[str]) -> None:
    """A result expectation may only use the keys its endpoint knows."""
    unknown = set(expect) - allowed
    assert not unknown, f"unknown expectation keys {unknown}"
