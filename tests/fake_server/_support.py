"""Shared constants and types for the fake server's own tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

API_KEY = "sk_test_fake_server_suite"
SEEDED = 25  # contacts seeded by the `server` fixture


@dataclass(frozen=True)
class Answer:
    """One raw HTTP answer."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


Post = Callable[..., Awaitable[Answer]]
Rpc = Callable[..., Awaitable[dict[str, Any]]]
Walk = Callable[..., Awaitable[list[dict[str, Any]]]]
