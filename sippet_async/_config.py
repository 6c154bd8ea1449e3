"""Frozen, validated configuration: the masked key, timeouts, limits, the base URL."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from sippet_async._errors import UsageError

__all__ = ["DEFAULT_BASE_URL", "ApiKey", "ClientConfig", "Timeouts", "check_token"]

DEFAULT_BASE_URL: Final = "https://api.sippet.ai"  # PROTOCOL.md §1.1
ENV_API_KEY: Final = "SIPPET_SECRET_KEY"
ENV_BASE_URL: Final = "SIPPET_BASE_URL"

# A single HTTP request is cheap on Sippet; 64 sockets keep a 1,000 req/s limit busy at
# ~60 ms round trips without opening more connections than a pool should.
DEFAULT_MAX_CONCURRENCY: Final = 64
# Pages of a few thousand records are ~1 MB; 64 MB leaves room for huge pages while a
# broken or hostile server cannot exhaust memory.
DEFAULT_MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024

# A slow TLS handshake across continents stays well below 10 s.
DEFAULT_CONNECT_TIMEOUT: Final = 10.0
# No separate wait per chunk by default: ``total`` already bounds a stalled reply, and
# aiohttp re-arms a per-chunk timer on every read (measured with callgrind at concurrency
# 1 on asyncio: +37k instructions per request, 9% of a bare aiohttp request).
DEFAULT_READ_TIMEOUT: Final[float | None] = None
# One attempt; retries get their own, and a per-call deadline bounds them all.
DEFAULT_TOTAL_TIMEOUT: Final = 60.0

# C0 controls and DEL: CR, LF and NUL break a header or a request line; none belongs in a
# key, an action name or a URL. A compiled regex keeps this off the hot path's profile.
_CONTROL_CHARS: Final = re.compile(r"[\x00-\x1f\x7f]")


def check_token(what: str, value: str) -> None:
    """Reject values that would break an HTTP header or a request line (CR, LF, NUL)."""
    if not isinstance(value, str):
        raise UsageError(f"{what} must be a string, got {value!r}")
    if value.isascii() and value.isprintable():  # C-speed: no C0 control and no DEL
        return
    if _CONTROL_CHARS.search(value):
        raise UsageError(f"{what} contains a control character (CR, LF, NUL or similar)")


class ApiKey:
    """The secret key: its text is only reachable through ``reveal()``; reprs mask it."""

    __slots__ = ("_secret",)

    def __init__(self, secret: str) -> None:
        if not isinstance(secret, str) or not secret.strip():
            raise UsageError(
                f"api_key is empty: pass api_key= or set {ENV_API_KEY}"
            )
        check_token("api_key", secret)
        self._secret = secret

    def reveal(self) -> str:
        """The key itself, for the ``x-api-key`` header only."""
        return self._secret

    def __repr__(self) -> str:
        return f"ApiKey('{self.masked}')"

    __str__ = __repr__

    @property
    def masked(self) -> str:
        """A hint that identifies the key without revealing it (``sk_…``)."""
        return self._secret[:3] + "…" if len(self._secret) > 12 else "…"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiKey) and other._secret == self._secret

    def __hash__(self) -> int:
        return hash(self._secret)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("ApiKey cannot be pickled")


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-attempt timeouts in seconds.

    ``connect`` covers getting a connection (DNS, TCP, TLS), ``total`` one whole attempt
    (it fires up to 5%, at most 1 s, late: one coarse timer serves every attempt), and
    ``read`` the wait for each chunk of the reply. ``read=None`` (the default) leaves
    a stalled reply to ``total``; set it to notice a stall sooner, at the cost of a timer
    re-armed on every read.

    Example:
        SippetClient(timeout=Timeouts(connect=5.0, read=20.0, total=120.0))
    """

    connect: float = DEFAULT_CONNECT_TIMEOUT
    read: float | None = DEFAULT_READ_TIMEOUT
    total: float = DEFAULT_TOTAL_TIMEOUT

    def __post_init__(self) -> None:
        for name in ("connect", "read", "total"):
            value = getattr(self, name)
            if name == "read" and value is None:
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise UsageError(f"timeout {name} must be a positive number, got {value!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_base_url(url: str) -> str:
    check_token("base_url", url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"base_url must be an http(s) URL with a host, got {url!r}")
    if parts.username or parts.password:
        # The URL itself is a credential here: never echo it.
        raise UsageError("base_url must not carry credentials (user:password@)")
    if parts.query or parts.fragment:
        raise UsageError(f"base_url must not carry a query or fragment: {url!r}")
    try:
        parts.port  # noqa: B018 - raises on a non-numeric or out-of-range port
    except ValueError as exc:
        raise UsageError(f"base_url has an invalid port: {url!r}") from exc
    if any(ch.isspace() for ch in url):
        raise UsageError(f"base_url contains whitespace: {url!r}")
    return url.rstrip("/")


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Everything a client needs, validated once. Build it with ``ClientConfig.resolve``."""

    api_key: ApiKey
    base_url: str = DEFAULT_BASE_URL
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", _validate_base_url(self.base_url))
        if not _is_int(self.max_concurrency) or self.max_concurrency < 1:
            raise UsageError(f"max_concurrency must be an int >= 1, got {self.max_concurrency!r}")
        if not _is_int(self.max_response_bytes) or self.max_response_bytes < 1024:
            raise UsageError(
                f"max_response_bytes must be an int >= 1024, got {self.max_response_bytes!r}"
            )

    @classmethod
    def resolve(
        cls,
        api_key: str | ApiKey | None,
        base_url: str | None,
        timeout: float | Timeouts | None,
        max_concurrency: int,
        max_response_bytes: int,
    ) -> ClientConfig:
        """Fill the gaps from the environment and defaults, then validate."""
        if api_key is None:
            api_key = os.environ.get(ENV_API_KEY)
        if api_key is None:
            raise UsageError(f"no API key: pass api_key= or set {ENV_API_KEY}")
        key = api_key if isinstance(api_key, ApiKey) else ApiKey(api_key)
        url = base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
        if timeout is None:
            timeouts = Timeouts()
        elif isinstance(timeout, Timeouts):
            timeouts = timeout
        elif isinstance(timeout, int | float) and not isinstance(timeout, bool):
            timeouts = Timeouts(
                total=timeout,
                connect=min(DEFAULT_CONNECT_TIMEOUT, timeout),
            )
        else:
            raise UsageError(f"timeout must be seconds or a Timeouts, got {timeout!r}")
        return cls(api_key=key, base_url=url, timeouts=timeouts,
                   max_concurrency=max_concurrency, max_response_bytes=max_response_bytes)
