"""SippetClient: lifecycle, run / validate, and the one pipeline every request goes through."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, TypedDict, TypeVar, Unpack, overload

import msgspec

from sippet_async import _protocol as protocol
from sippet_async._config import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RESPONSE_BYTES,
    ApiKey,
    ClientConfig,
    Timeouts,
    check_token,
)
from sippet_async._errors import ClientClosedError, UsageError
from sippet_async._models import RpcRequest, RunResult, ValidationResult
from sippet_async._transport import AiohttpTransport, Transport

if TYPE_CHECKING:
    import aiohttp

__all__ = ["RequestKeys", "SippetClient"]

T = TypeVar("T")
R = TypeVar("R")

log: Final = logging.getLogger("sippet_async")



class RequestKeys(TypedDict, total=False):
    """The request keys of PROTOCOL.md §3.1, snake_cased; sent camelCased, only if given."""

    input: Mapping[str, Any]
    identity: Any
    fields: Sequence[str | Mapping[str, Any]]
    filter: Mapping[str, Any]
    sort: str | Sequence[str]
    page: Mapping[str, Any]
    metadata_fields: Sequence[str]
    get_by: Mapping[str, Any]
    tenant: str


class SippetClient:
    """An asyncio client for Sippet's RPC API, with one pooled HTTP session.

    Example:
        async with SippetClient(api_key="sk_live_...") as client:
            data = await client.run("list_contacts", fields=["id", "fullName"],
                                    page={"limit": 20})
    """

    def __init__(
        self,
        api_key: str | ApiKey | None = None,
        *,
        base_url: str | None = None,
        timeout: float | Timeouts | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        session: aiohttp.ClientSession | None = None,
        transport: Transport | None = None,
    ) -> None:
        """Create a client; nothing is opened until the first request.

        Args:
            api_key: the secret key; defaults to ``$SIPPET_SECRET_KEY``.
            base_url: defaults to ``$SIPPET_BASE_URL``, then ``https://api.sippet.ai``.
            timeout: seconds per attempt, or a ``Timeouts`` (connect / read / total).
            max_concurrency: requests in flight at once (also the connection pool size).
            max_response_bytes: larger replies are refused without being read.
            session: an ``aiohttp.ClientSession`` to borrow (never closed by the client).
            transport: a custom ``Transport`` (overrides ``session``).

        Raises:
            UsageError: a missing key, a malformed base URL or a bad limit.
        """
        self._config = ClientConfig.resolve(
            api_key, base_url, timeout, max_concurrency, max_response_bytes
        )
        cfg = self._config
        self._transport: Transport = transport or AiohttpTransport(
            timeouts=cfg.timeouts,
            max_concurrency=cfg.max_concurrency,
            max_response_bytes=cfg.max_response_bytes,
            session=session,
        )
        self._headers: Final = {
            protocol.API_KEY_HEADER: cfg.api_key.reveal(),
            "content-type": "application/json",
            "accept": "application/json",
        }
        self._run_url: Final = cfg.base_url + protocol.RUN_PATH
        self._validate_url: Final = cfg.base_url + protocol.VALIDATE_PATH
        self._slots = asyncio.Semaphore(cfg.max_concurrency)
        self._closed = False

    @property
    def config(self) -> ClientConfig:
        """The resolved, validated configuration (the key inside is masked)."""
        return self._config

    @property
    def closed(self) -> bool:
        """True once ``aclose()`` has run."""
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<SippetClient {self._config.base_url} key={self._config.api_key.masked} {state}>"

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled session (a borrowed one is left open). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        await self._transport.aclose()

    # -- public calls -----------------------------------------------------------------

    @overload
    async def run(self, action: str, *, type: type[T], **keys: Unpack[RequestKeys]) -> T: ...
    @overload
    async def run(
        self, action: str, *, type: None = None, **keys: Unpack[RequestKeys]
    ) -> Any: ...

    async def run(
        self, action: str, *, type: type[T] | None = None, **keys: Unpack[RequestKeys]
    ) -> T | Any:
        """Run ``action`` and return the envelope's ``data``.

        Keys are those of PROTOCOL.md §3 in snake_case: ``input``, ``identity``,
        ``fields``, ``filter``, ``sort``, ``page``, ``metadata_fields``, ``get_by``,
        ``tenant``. Only the keys given are sent. With ``type``, ``data`` is decoded
        straight into it (a msgspec Struct, ``list[Contact]``, ...).

        Example:
            contact = await client.run("create_contact",
                                       input={"fullName": "Ada", "phoneE164": "+15555550123"},
                                       fields=["id"])

        Raises:
            RpcError: the server answered ``success: false`` (a subclass by error type).
        """
        result = await self.run_with_metadata(action, type=type, **keys)
        return result.data

    async def run_with_metadata(
        self, action: str, *, type: type[T] | None = None, **keys: Unpack[RequestKeys]
    ) -> RunResult[T]:
        """Like ``run`` but returns ``RunResult(data, metadata)``: mutations may put
        metadata beside ``data`` (PROTOCOL.md §3.6)."""
        return await self._execute(
            self._run_url, action, _body(action, keys),
            lambda response: protocol.decode_run(action, response, type),
        )

    async def validate(self, action: str, **keys: Unpack[RequestKeys]) -> ValidationResult:
        """Check a payload with ``/validate`` without running it; invalid input does not raise.

        Example:
            check = await client.validate("create_contact", input={"fullName": "Ada"})
            if not check.ok:
                print(check.errors[0].render())
        """
        return await self._execute(
            self._validate_url, action, _body(action, keys),
            lambda response: protocol.decode_validate(action, response),
        )

    # -- the pipeline -----------------------------------------------------------------

    async def _execute(
        self,
        url: str,
        action: str,
        body: bytes,
        decode: Callable[[protocol.HttpResponse], R],
    ) -> R:
        """One request, in order: concurrency slot -> send -> decode into a result or error."""
        self._check_open()
        request = protocol.HttpRequest(url=url, body=body, headers=self._headers)
        async with self._slots:
            log.debug("sending %s to %s", action, url)
            response = await self._transport.send(request)
        return decode(response)

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("this SippetClient is closed; create a new one")


_KEYS: Final = frozenset(
    {"input", "identity", "fields", "filter", "sort", "page", "metadata_fields", "get_by",
     "tenant"}
)


def _body(action: str, keys: Mapping[str, Any]) -> bytes:
    """Check the caller's keys before any I/O (strict in what we send) and encode them."""
    if not isinstance(action, str) or not action:
        raise UsageError(f"action must be a non-empty string, got {action!r}")
    check_token("action", action)
    unknown = set(keys) - _KEYS
    if unknown:
        raise UsageError(
            f"unknown request key(s) {sorted(unknown)}; expected some of {sorted(_KEYS)}"
        )
    given = {name: value for name, value in keys.items() if value is not None}
    _check_shape(given)
    try:
        return protocol.encode_payload(RpcRequest(action=action, **given))
    except (TypeError, msgspec.EncodeError) as exc:
        raise UsageError(f"{action}: a request value cannot be sent as JSON: {exc}") from exc


def _check_shape(keys: Mapping[str, Any]) -> None:
    for name in ("input", "filter", "page", "get_by"):
        if name in keys and not isinstance(keys[name], Mapping):
            raise UsageError(f"{name} must be a mapping (a JSON object), got {keys[name]!r}")
    for name in ("fields", "metadata_fields"):
        value = keys.get(name)
        if value is not None and (
            isinstance(value, str | bytes) or not isinstance(value, Sequence)
        ):
            raise UsageError(f"{name} must be a list, e.g. ['id', 'fullName'], got {value!r}")
    sort = keys.get("sort")
    if sort is not None and not (
        isinstance(sort, str)
        or (isinstance(sort, Sequence) and all(isinstance(item, str) for item in sort))
    ):
        raise UsageError(f"sort must be a string or a list of strings, got {sort!r}")
