"""Frozen, validated configuration: the masked key, timeouts, limits, the base URL, and the
whole request policy (retries, idempotency, Retry-After cap, deadline, breaker, rate)."""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Final, cast
from urllib.parse import unquote, urlsplit

from sippet_async._errors import UsageError
from sippet_async._limiter import RateLimiter, check_rate, is_limiter

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_RETRY_AFTER_CAP",
    "ApiKey",
    "BreakerPolicy",
    "ClientConfig",
    "ProxyAuth",
    "RetryPolicy",
    "Timeouts",
    "check_seconds",
    "check_token",
]

Sleep = Callable[[float], Awaitable[None]]

DEFAULT_BASE_URL: Final = "https://api.sippet.ai"  # docs/protocol.md §1.1
ENV_API_KEY: Final = "SIPPET_SECRET_KEY"
ENV_BASE_URL: Final = "SIPPET_BASE_URL"

# A single HTTP request is cheap on Sippet; 64 sockets keep a 1,000 req/s limit busy at
# ~60 ms round trips without opening more connections than a pool should.
DEFAULT_MAX_CONCURRENCY: Final = 64
# The largest legitimate reply is one page: the server clamps ``page.limit`` to the action's
# max_page_size (docs/protocol.md §5.1; Ash's default is 250, the fake server's 500), and a
# record with a wide field selection is 1-2 KB, so a full page is ~1 MB. 8 MiB leaves 8x
# for nested selections and unpaginated lists (``list_calls``, docs/protocol.md §12.6),
# while a broken or endless reply costs at most the cap before it is refused (measured by
# tests/client/test_client_limits.py: under 20 MB of RSS). Raise it for bigger replies.
DEFAULT_MAX_RESPONSE_BYTES: Final = 8 * 1024 * 1024

# A slow TLS handshake across continents stays well below 10 s.
DEFAULT_CONNECT_TIMEOUT: Final = 10.0
# No separate wait per chunk by default: ``total`` already bounds a stalled reply, and
# aiohttp re-arms a per-chunk timer on every read (measured with callgrind at concurrency
# 1 on asyncio: +37k instructions per request, 9% of a bare aiohttp request).
DEFAULT_READ_TIMEOUT: Final[float | None] = None
# One attempt; retries get their own, and a per-call deadline bounds them all.
DEFAULT_TOTAL_TIMEOUT: Final = 60.0

# -- retries (the engine's _retry reads these) --
# 1 attempt + 3 retries: at an 18% transient failure rate a call still fails only with
# probability 0.18**4 ~ 0.1%, and an outage costs at most 4 attempts per call.
DEFAULT_ATTEMPTS: Final = 4
# Short enough that a blip costs ~0.1-0.2 s on average (full jitter halves the mean)...
DEFAULT_INITIAL_WAIT: Final = 0.25
# ...and capped so a long run of failures never backs off for more than 10 s at a time.
DEFAULT_MAX_WAIT: Final = 10.0
# Retry budget (gRPC retry throttling / botocore retry quota): each retry costs one token,
# each definite reply refunds BUDGET_REFILL. 0.5 sustains one retry per two successes, i.e.
# a steady failure rate up to ~33% (18% needs ~0.22 retries per success); in a total outage
# the 50 tokens drain and each call then costs one attempt, not four.
DEFAULT_BUDGET: Final = 50.0
DEFAULT_BUDGET_REFILL: Final = 0.5
# Rate limits reset within seconds to a minute; a longer Retry-After (maintenance, a daily
# quota) is better reported to the caller than slept through.
DEFAULT_RETRY_AFTER_CAP: Final = 60.0
# -- the breaker (_breaker) --
# Three refused connections in a row, with no reply to any request of the client in
# between: one refusal happens to a healthy server (a full accept queue), three while
# nothing answers do not. Scouts go one at a time, so the three cost three attempts.
DEFAULT_THRESHOLD: Final = 3
# The first probe follows the opening quickly: a restart or a dropped route is often over
# in well under a second.
DEFAULT_PROBE_WAIT: Final = 0.1
# x1.15 per failed probe: the end of an outage of T seconds is noticed within ~0.15 T
# (within 1.2 s of the end of a 5 s outage, with 19 probes; 36 in a minute), where
# doubling would take up to T. A probe is one connection attempt: cheap for the server.
DEFAULT_PROBE_GROWTH: Final = 1.15
# One connection attempt per 30 s at most is nothing to a recovering server, and a client
# waiting for it still notices within 30 s.
DEFAULT_MAX_PROBE_WAIT: Final = 30.0
# Half of each wait is random ("equal jitter"): the clients of one outage drift apart
# without probes ever coming sooner than half the schedule.
DEFAULT_PROBE_JITTER: Final = 0.5
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


class ProxyAuth:
    """Basic credentials for the proxy: the password is only reachable through ``reveal()``."""

    __slots__ = ("_password", "login")

    def __init__(self, login: str, password: str) -> None:
        if not isinstance(login, str) or not isinstance(password, str) or not login:
            raise UsageError("proxy_auth must be a (login, password) pair of strings")
        if ":" in login:
            raise UsageError("proxy_auth login must not contain ':' (RFC 7617)")
        check_token("proxy_auth login", login)
        check_token("proxy_auth password", password)
        self.login = login
        self._password = password

    def reveal(self) -> str:
        """The password itself, for the ``Proxy-Authorization`` header only."""
        return self._password

    def __repr__(self) -> str:
        return f"ProxyAuth(login={self.login!r}, password='…')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ProxyAuth) and other.login == self.login
                and other._password == self._password)

    def __hash__(self) -> int:
        return hash((self.login, self._password))

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("ProxyAuth cannot be pickled")


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


def _check_jitter(owner: str, jitter: object) -> None:
    """A policy's ``jitter``: the randomised fraction of each wait, within [0, 1]."""
    if isinstance(jitter, bool) or not isinstance(jitter, int | float) \
            or not 0.0 <= jitter <= 1.0:
        raise UsageError(f"{owner}.jitter must be within [0, 1], got {jitter!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How a client retries: attempts, full-jitter exponential backoff, the retry budget.

    ``Retry-After`` is honoured as the minimum wait. ``attempts=1`` disables retries.

    Args:
        attempts: attempts per call, the first included.
        initial_wait: backoff ceiling after the first failure, in seconds; it doubles per
            retry up to ``max_wait``.
        max_wait: the largest backoff ceiling, in seconds.
        jitter: the fraction of the ceiling that is randomised: 1.0 waits uniformly in
            [0, ceiling] ("full jitter"), 0.0 waits exactly the ceiling.
        budget: retry tokens shared by the whole client; a retry costs one.
        budget_refill: tokens refunded by each attempt that got a definite reply.
        sleep: the coroutine used to wait (retry waits and shared pauses); inject a fake
            one in tests so nothing waits.

    Example:
        client = SippetClient(retry=RetryPolicy(attempts=6, max_wait=30.0))
    """

    attempts: int = DEFAULT_ATTEMPTS
    initial_wait: float = DEFAULT_INITIAL_WAIT
    max_wait: float = DEFAULT_MAX_WAIT
    jitter: float = 1.0
    budget: float = DEFAULT_BUDGET
    budget_refill: float = DEFAULT_BUDGET_REFILL
    sleep: Sleep | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) \
                or self.attempts < 1:
            raise UsageError(f"RetryPolicy.attempts must be an int >= 1, got {self.attempts!r}")
        for name in ("initial_wait", "max_wait", "budget", "budget_refill"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value) or value < 0:
                raise UsageError(f"RetryPolicy.{name} must be a number >= 0, got {value!r}")
        if self.max_wait < self.initial_wait:
            raise UsageError(f"RetryPolicy.max_wait ({self.max_wait!r}) must be >= "
                             f"initial_wait ({self.initial_wait!r})")
        _check_jitter("RetryPolicy", self.jitter)
        if self.sleep is not None and not callable(self.sleep):
            raise UsageError(f"RetryPolicy.sleep must be a coroutine function, "
                             f"got {self.sleep!r}")

    def backoff(self, retry: int, draw: float) -> float:
        """The wait before retry number ``retry`` (from 1), given a uniform ``draw`` in [0, 1)."""
        ceiling = min(self.max_wait, self.initial_wait * 2.0 ** min(retry - 1, 62))
        return ceiling * (1.0 - self.jitter * draw)


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerPolicy:
    """When the client stops sending to an unreachable server, and how it probes it.

    Args:
        threshold: connection failures in a row (refused, DNS, connect timeout; no HTTP
            answer to any request in between) that open it.
        probe_wait: seconds from the opening to the first probe.
        growth: each failed probe multiplies the wait by this.
        max_probe_wait: the longest wait between two probes.
        jitter: the fraction of each wait that is random (0: exact schedule).

    Example:
        client = SippetClient(breaker=BreakerPolicy(threshold=5, max_probe_wait=10.0))
    """

    threshold: int = DEFAULT_THRESHOLD
    probe_wait: float = DEFAULT_PROBE_WAIT
    growth: float = DEFAULT_PROBE_GROWTH
    max_probe_wait: float = DEFAULT_MAX_PROBE_WAIT
    jitter: float = DEFAULT_PROBE_JITTER

    def __post_init__(self) -> None:
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int) \
                or self.threshold < 1:
            raise UsageError(f"BreakerPolicy.threshold must be an int >= 1, "
                             f"got {self.threshold!r}")
        for name, low in (("probe_wait", 0.0), ("growth", 1.0), ("max_probe_wait", 0.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value) or value < low or (low == 0.0 and value == 0):
                raise UsageError(f"BreakerPolicy.{name} must be a finite number "
                                 f"{'>= 1' if low else '> 0'}, got {value!r}")
        if self.max_probe_wait < self.probe_wait:
            raise UsageError(f"BreakerPolicy.max_probe_wait ({self.max_probe_wait!r}) must be "
                             f">= probe_wait ({self.probe_wait!r})")
        _check_jitter("BreakerPolicy", self.jitter)


def check_seconds(name: str, value: float | None) -> float | None:
    """A validated duration in seconds: positive, or None / infinity for "no limit"."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) \
            or value <= 0:
        raise UsageError(f"{name} must be a positive number of seconds, got {value!r}")
    return None if math.isinf(value) else float(value)


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


def _is_ssl_context(value: object) -> bool:
    """Whether ``value`` is an ``ssl.SSLContext``, without importing ssl here (this module
    stays free of network code): a context can only exist once ssl has been imported."""
    ssl_module = sys.modules.get("ssl")
    return ssl_module is not None and isinstance(value, ssl_module.SSLContext)


def _split_proxy(proxy: str | None, auth: object) -> tuple[str | None, ProxyAuth | None]:
    """The proxy URL without credentials, and the credentials (from ``auth`` or the URL)."""
    if proxy is None:
        if auth is not None:
            raise UsageError("proxy_auth needs proxy= (an http:// or https:// proxy URL)")
        return None, None
    if not isinstance(proxy, str):
        raise UsageError(f"proxy must be an http:// or https:// URL string, got "
                         f"{type(proxy).__name__}")
    check_token("proxy", proxy)
    parts = urlsplit(proxy)
    # Never echo ``proxy`` itself below: it may carry a password.
    try:
        port = parts.port
    except ValueError:
        raise UsageError("proxy has an invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError("proxy must be an http:// or https:// URL with a host")
    if (parts.path not in ("", "/")) or parts.query or parts.fragment \
            or any(ch.isspace() for ch in proxy):
        raise UsageError("proxy must be scheme://host[:port] only (no path, query or "
                         "whitespace)")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    bare = f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
    credentials: ProxyAuth | None = None
    if parts.username is not None or parts.password is not None:
        if auth is not None:
            raise UsageError("give proxy credentials once: in the proxy URL or in proxy_auth")
        credentials = ProxyAuth(unquote(parts.username or ""), unquote(parts.password or ""))
    elif isinstance(auth, ProxyAuth):
        credentials = auth
    elif auth is not None:
        if not isinstance(auth, tuple) or len(auth) != 2:
            raise UsageError("proxy_auth must be a (login, password) pair, got "
                             f"{type(auth).__name__}")
        credentials = ProxyAuth(auth[0], auth[1])
    return bare, credentials


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Everything a client needs, validated once. Build it with ``ClientConfig.resolve``.

    ``ssl``, ``proxy``, ``proxy_auth`` and ``trust_env`` are the network options of the
    "Networks: TLS and proxies" guide; ``proxy`` never carries credentials (they are moved
    to ``proxy_auth``, whose repr masks the password).

    The request policy is here too, so ``client.config`` shows all of it: ``rate_limit``,
    ``retry``, ``idempotent_actions``, ``honours_idempotency_key``, ``retry_after_cap``
    (``inf``: always wait as told), ``deadline`` (None: none) and ``breaker`` (None: off),
    each as ``SippetClient`` takes it.
    """

    api_key: ApiKey
    base_url: str = DEFAULT_BASE_URL
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    # An ssl.SSLContext; typed Any because this module stays pure (no ssl import, not
    # even for typing: tests/test_layers.py), and validated in __post_init__.
    ssl: Any = None
    proxy: str | None = None
    proxy_auth: ProxyAuth | None = None
    trust_env: bool = False
    rate_limit: float | RateLimiter | None = None
    retry: RetryPolicy = RetryPolicy()
    idempotent_actions: frozenset[str] = frozenset()
    honours_idempotency_key: bool = False
    retry_after_cap: float = DEFAULT_RETRY_AFTER_CAP
    deadline: float | None = None
    breaker: BreakerPolicy | None = BreakerPolicy()

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", _validate_base_url(self.base_url))
        if self.ssl is not None and not _is_ssl_context(self.ssl):
            if self.ssl is False:
                raise UsageError(
                    "ssl=False is not supported: it would send the secret key to whoever "
                    "answers. Pass an ssl.SSLContext that trusts your CA instead")
            raise UsageError(f"ssl must be an ssl.SSLContext, got {type(self.ssl).__name__}")
        proxy, auth = _split_proxy(self.proxy, self.proxy_auth)
        object.__setattr__(self, "proxy", proxy)
        object.__setattr__(self, "proxy_auth", auth)
        if not isinstance(self.trust_env, bool):
            raise UsageError(f"trust_env must be True or False, got {self.trust_env!r}")
        if not _is_int(self.max_concurrency) or self.max_concurrency < 1:
            raise UsageError(f"max_concurrency must be an int >= 1, got {self.max_concurrency!r}")
        if not _is_int(self.max_response_bytes) or self.max_response_bytes < 1024:
            raise UsageError(
                f"max_response_bytes must be an int >= 1024, got {self.max_response_bytes!r}"
            )
        self._check_policy()

    def _check_policy(self) -> None:
        rate = self.rate_limit
        if rate is not None and not is_limiter(rate):
            check_rate("rate_limit", rate)
        if not isinstance(self.retry, RetryPolicy):
            raise UsageError(f"retry must be a RetryPolicy, got {self.retry!r}")
        actions: Collection[str] = self.idempotent_actions
        if isinstance(actions, str) or not isinstance(actions, Collection) \
                or not all(isinstance(name, str) for name in actions):
            raise UsageError("idempotent_actions must be a collection of action names, "
                             f"got {actions!r}")
        object.__setattr__(self, "idempotent_actions", frozenset(actions))
        object.__setattr__(self, "honours_idempotency_key", bool(self.honours_idempotency_key))
        object.__setattr__(self, "deadline", check_seconds("deadline", self.deadline))
        if self.retry_after_cap is None:
            raise UsageError("retry_after_cap must be a positive number of seconds "
                             "(float('inf') to always wait as told), got None")
        cap = check_seconds("retry_after_cap", self.retry_after_cap)
        object.__setattr__(self, "retry_after_cap", math.inf if cap is None else cap)
        if self.breaker is not None and not isinstance(self.breaker, BreakerPolicy):
            raise UsageError(f"breaker must be a BreakerPolicy or None, got {self.breaker!r}")

    @classmethod
    def resolve(
        cls,
        api_key: str | ApiKey | None,
        base_url: str | None,
        timeout: float | Timeouts | None,
        max_concurrency: int,
        max_response_bytes: int,
        *,
        ssl: Any = None,
        proxy: str | None = None,
        proxy_auth: object = None,
        trust_env: bool = False,
        rate_limit: float | RateLimiter | None = None,
        retry: RetryPolicy = RetryPolicy(),
        idempotent_actions: Collection[str] = frozenset(),
        honours_idempotency_key: bool = False,
        retry_after_cap: float = DEFAULT_RETRY_AFTER_CAP,
        deadline: float | None = None,
        breaker: BreakerPolicy | None = BreakerPolicy(),
    ) -> ClientConfig:
        """Fill the gaps from the environment and defaults, then validate."""
        if api_key is None:
            api_key = os.environ.get(ENV_API_KEY)
        if api_key is None:
            raise UsageError(f"no API key: pass api_key= or set {ENV_API_KEY}")
        key = api_key if isinstance(api_key, ApiKey) else ApiKey(api_key)
        url = base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
        bare_proxy, credentials = _split_proxy(proxy, proxy_auth)
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
                   max_concurrency=max_concurrency, max_response_bytes=max_response_bytes,
                   ssl=ssl, proxy=bare_proxy, proxy_auth=credentials, trust_env=trust_env,
                   rate_limit=rate_limit, retry=retry,
                   idempotent_actions=cast(frozenset[str], idempotent_actions),  # normalised
                   honours_idempotency_key=honours_idempotency_key,
                   retry_after_cap=retry_after_cap, deadline=deadline, breaker=breaker)
