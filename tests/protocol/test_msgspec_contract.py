"""The one piece of msgspec's output we parse: the JSON path in a ValidationError.

Every ProtocolError message is written by us; only its ``path`` comes from msgspec's
error text. If a msgspec release changes that format, this test fails and says where to
look, instead of paths silently turning into ``$``.
"""

from __future__ import annotations

import msgspec
import pytest

from sippet_async._protocol import _decoder_path


class _Leaf(msgspec.Struct):
    count: int


class _Root(msgspec.Struct):
    items: list[_Leaf]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b'{"items": [{"count": 1}, {"count": "x"}]}', "$.items[1].count"),
        (b'{"items": {"count": 1}}', "$.items"),
        (b'{"items": [{"count": 1e400}]}', "$.items[0].count"),
    ],
)
def test_validation_error_names_its_path(body: bytes, path: str) -> None:
    """msgspec still names the failing path as "at `$...`" (read by _decoder_path)."""
    with pytest.raises(msgspec.ValidationError) as info:
        msgspec.json.decode(body, type=_Root)
    assert _decoder_path(info.value) == path, (
        "msgspec's ValidationError no longer names the path as \"at `$...`\": "
        f"update _MSGSPEC_PATH in sippet_async/_protocol.py (its text: {info.value})"
    )


def test_an_error_at_the_root_has_no_path() -> None:
    """A mismatch of the whole document carries no path; ours then says ``$``."""
    with pytest.raises(msgspec.ValidationError) as info:
        msgspec.json.decode(b"[]", type=_Root)
    assert _decoder_path(info.value) is None
