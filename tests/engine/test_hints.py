"""RateLimit-* hint parsing (docs/protocol.md §12.1): every form read, malformed ones absent."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import multidict
import pytest

from sippet_async._protocol import RateLimitHint, parse_rate_limit


class Folded(Mapping[str, str]):
    """The least a reply's headers must be by the Transport contract: a mapping that looks
    names up case-insensitively (what a custom transport may return)."""

    def __init__(self, headers: dict[str, str]) -> None:
        self._items = {name.lower(): value for name, value in headers.items()}

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


# How headers reach parse_rate_limit: any case-insensitive mapping (a custom transport's),
# or aiohttp's own.
Headers = Callable[[dict[str, str]], Mapping[str, str]]
KINDS: dict[str, Headers] = {
    "mapping": Folded,
    "aiohttp": lambda h: multidict.CIMultiDictProxy(multidict.CIMultiDict(h)),
}

CASES: list[tuple[str, dict[str, str], RateLimitHint | None]] = [
    ("none", {"Content-Type": "application/json"}, None),
    ("split", {"RateLimit-Limit": "100", "RateLimit-Remaining": "7", "RateLimit-Reset": "3"},
     RateLimitHint(remaining=7, reset=3.0, limit=100)),
    ("split lower-case", {"ratelimit-remaining": "0", "ratelimit-reset": "1.5"},
     RateLimitHint(remaining=0, reset=1.5)),
    ("split, no limit", {"RateLimit-Remaining": "2", "RateLimit-Reset": "10"},
     RateLimitHint(remaining=2, reset=10.0)),
    ("ietf dictionary", {"RateLimit": "limit=10, remaining=4, reset=2"},
     RateLimitHint(remaining=4, reset=2.0, limit=10)),
    ("ietf structured", {"RateLimit": '"default";r=5;t=30',
                         "RateLimit-Policy": '"default";q=100;w=60'},
     RateLimitHint(remaining=5, reset=30.0, limit=100)),
    ("ietf structured, no policy", {"RateLimit": '"burst";r=0;t=1'},
     RateLimitHint(remaining=0, reset=1.0)),
    ("reset not a number", {"RateLimit-Remaining": "0", "RateLimit-Reset": "soon"}, None),
    ("negative remaining", {"RateLimit-Remaining": "-1", "RateLimit-Reset": "1"}, None),
    ("fractional remaining", {"RateLimit-Remaining": "1.5", "RateLimit-Reset": "1"}, None),
    ("remaining only", {"RateLimit-Remaining": "0"}, None),
    ("epoch reset", {"RateLimit-Remaining": "0", "RateLimit-Reset": "1767225600"}, None),
    ("remaining above limit", {"RateLimit-Limit": "5", "RateLimit-Remaining": "9",
                               "RateLimit-Reset": "1"}, None),
    ("exponent", {"RateLimit-Remaining": "1e3", "RateLimit-Reset": "1"}, None),
    ("dictionary missing reset", {"RateLimit": "remaining=0"}, None),
    ("garbage", {"RateLimit": ";;;"}, None),
    ("empty", {"RateLimit": ""}, None),
    ("structured garbage", {"RateLimit": '"x";r;t=1'}, None),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("name", "headers", "expected"), CASES, ids=[c[0] for c in CASES])
def test_parse_rate_limit(name: str, headers: dict[str, str],
                          expected: RateLimitHint | None, kind: str) -> None:
    """Each header set parses to the expected hint, or to None when malformed or absent."""
    assert parse_rate_limit(KINDS[kind](headers)) == expected


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["RATELIMIT-REMAINING", "Ratelimit-Remaining"])
def test_hint_names_match_in_any_case(kind: str, name: str) -> None:
    """Header names are case-insensitive (RFC 9110 §5.1), whatever the mapping."""
    headers = KINDS[kind]({name: "0", "RATELIMIT-reset": "2"})
    assert parse_rate_limit(headers) == RateLimitHint(remaining=0, reset=2.0)
