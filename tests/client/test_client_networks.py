"""TLS and proxies: a private CA (trustme), refused certificates, and a CONNECT proxy.

Every server here listens on 127.0.0.1 and is started and stopped by the test.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _client_tls import PrivateCA, private_ca

from sippet_async import (
    ClientConfig,
    RetryPolicy,
    SippetClient,
    TLSVerificationError,
    TransportError,
    UsageError,
)
from sippet_async.testing import FakeSippet


async def _no_wait(seconds: float) -> None:
    """A retry sleep that does not wait (a retry would still be counted)."""


def _retrying() -> RetryPolicy:
    """The default policy (4 attempts), without real waits."""
    return RetryPolicy(sleep=_no_wait)


@pytest.fixture(scope="module")
def ca() -> PrivateCA:
    """A private CA and a certificate for 127.0.0.1 it signed."""
    return private_ca("127.0.0.1")


@pytest.fixture
async def tls_server(ca: PrivateCA, api_key: str) -> AsyncIterator[FakeSippet]:
    """A fake Sippet over HTTPS with the private CA's certificate."""
    async with FakeSippet(api_key, ssl=ca.server, seed_contacts=3) as server:
        yield server


# -- TLS ------------------------------------------------------------------------------


async def test_a_private_ca_is_trusted_through_ssl(
    tls_server: FakeSippet, ca: PrivateCA, api_key: str,
) -> None:
    """With ssl= a context that trusts the CA, requests over HTTPS succeed."""
    assert tls_server.url.startswith("https://")
    async with SippetClient(api_key, base_url=tls_server.url, ssl=ca.client) as client:
        data = await client.run("list_contacts", fields=["id"], page={"limit": 2})
        assert client.config.ssl is ca.client
    assert len(data["results"]) == 2
    assert len(tls_server.requests) == 1


async def test_an_unknown_ca_fails_fast_without_retries(
    tls_server: FakeSippet, api_key: str,
) -> None:
    """Without the CA: TLSVerificationError, not sent, one attempt and no retry."""
    async with SippetClient(api_key, base_url=tls_server.url, retry=_retrying()) as client:
        with pytest.raises(TLSVerificationError) as caught:
            await client.run("list_contacts", fields=["id"])
        assert client.counters.requests == 1
        assert client.counters.total_retries == 0
    assert caught.value.sent is False
    assert "ssl=" in str(caught.value)  # says how to supply a CA
    assert api_key not in str(caught.value)
    assert tls_server.requests == []


async def test_a_refused_certificate_stops_a_bulk_job_after_one_window(
    tls_server: FakeSippet, api_key: str,
) -> None:
    """A bulk job against a server whose certificate is refused stops at once: the rest of
    the items are not_sent with that cause, and no more than a window of attempts is made."""
    items = [{"fullName": f"P {i}", "phoneE164": f"+1555000{i:04d}"} for i in range(500)]
    async with SippetClient(api_key, base_url=tls_server.url, retry=_retrying()) as client:
        async with client.bulk("create_contact", items, concurrency=8) as job:
            outcomes = [outcome async for outcome in job]
        assert client.counters.requests <= 8
    assert len(outcomes) == len(items)
    assert isinstance(job.stopped_by, TLSVerificationError)
    not_sent = [o for o in outcomes if o.status == "not_sent"]
    assert len(not_sent) >= len(items) - 8
    assert all(o.error is job.stopped_by for o in not_sent)
    assert tls_server.requests == []


@pytest.mark.parametrize(("certified", "host"), [
    ("localhost", "127.0.0.1"),  # an IP address the certificate does not list
    ("127.0.0.1", "localhost"),  # a hostname the certificate does not list
])
async def test_a_certificate_for_another_host_fails_fast(
    certified: str, host: str, api_key: str,
) -> None:
    """A trusted certificate that names another host is refused, and never retried."""
    own = private_ca(certified)
    async with FakeSippet(api_key, ssl=own.server) as server:
        port = server.url.rsplit(":", 1)[1]
        async with SippetClient(api_key, base_url=f"https://{host}:{port}", ssl=own.client,
                                retry=_retrying()) as client:
            with pytest.raises(TLSVerificationError) as caught:
                await client.run("list_contacts", fields=["id"])
            assert client.counters.total_retries == 0
        assert server.requests == []
    assert f"not valid for {host}" in str(caught.value)


async def test_a_client_certificate_is_presented_from_the_ssl_context(api_key: str) -> None:
    """A server that requires a client certificate accepts one loaded into ssl=."""
    ca = private_ca("127.0.0.1")
    ca_root = trust_root(ca)
    ca.server.verify_mode = ssl.CERT_REQUIRED
    ca.server.load_verify_locations(cadata=ca_root)
    async with FakeSippet(api_key, ssl=ca.server) as server:
        with_cert = ssl.create_default_context(cadata=ca_root)
        _issue_client_cert(ca, with_cert)
        async with SippetClient(api_key, base_url=server.url, ssl=with_cert) as client:
            await client.run("list_contacts", fields=["id"])
        async with SippetClient(api_key, base_url=server.url, ssl=ca.client,
                                retry=RetryPolicy(attempts=1)) as client:
            with pytest.raises(TransportError):
                await client.run("list_contacts", fields=["id"])
        assert len(server.requests) == 1


def trust_root(ca: PrivateCA) -> str:
    """The CA certificate, PEM."""
    return ca.authority.cert_pem.bytes().decode()


def _issue_client_cert(ca: PrivateCA, context: ssl.SSLContext) -> None:
    ca.authority.issue_cert("client@example.test").configure_cert(context)


# -- a CONNECT proxy ------------------------------------------------------------------


class TunnelProxy:
    """A forward proxy on 127.0.0.1 that only speaks CONNECT: counts tunnels, pipes bytes."""

    def __init__(self, password: str | None = None) -> None:
        self.tunnels = 0
        self.authorizations: list[str | None] = []
        self._password = password
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    async def __aenter__(self) -> TunnelProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        upstream: asyncio.StreamWriter | None = None
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            line, *lines = head.split("\r\n")
            method, target, _ = line.split(" ", 2)
            headers = {
                name.strip().lower(): value.strip()
                for name, value in (item.split(":", 1) for item in lines if item)
            }
            self.authorizations.append(headers.get("proxy-authorization"))
            if method != "CONNECT":
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            if self._password is not None and not _basic_ok(headers, self._password):
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                             b"Content-Length: 0\r\n\r\n")
                return
            host, port = target.rsplit(":", 1)
            up_reader, upstream = await asyncio.open_connection(host, int(port))
            self.tunnels += 1
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await asyncio.gather(_pipe(reader, upstream), _pipe(up_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            for end in (writer, upstream):
                if end is not None:
                    end.close()
            self._tasks.discard(task)  # type: ignore[arg-type]


def _basic_ok(headers: dict[str, str], password: str) -> bool:
    value = headers.get("proxy-authorization", "")
    expected = base64.b64encode(f"proxy-user:{password}".encode()).decode()
    return value == f"Basic {expected}"


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    if sink.can_write_eof():
        with contextlib.suppress(OSError):
            sink.write_eof()


@pytest.fixture
async def proxy() -> AsyncIterator[TunnelProxy]:
    """A CONNECT proxy on 127.0.0.1, without authentication."""
    async with TunnelProxy() as tunnel:
        yield tunnel


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch, proxy: TunnelProxy) -> None:
    """HTTPS_PROXY points at the proxy, and nothing bypasses it."""
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)


async def _list(client: SippetClient) -> Any:
    return await client.run("list_contacts", fields=["id"], page={"limit": 1})


async def test_requests_go_through_the_proxy_given(
    tls_server: FakeSippet, ca: PrivateCA, proxy: TunnelProxy, api_key: str,
) -> None:
    """With proxy=, requests are tunnelled through it (CONNECT) and succeed."""
    async with SippetClient(api_key, base_url=tls_server.url, ssl=ca.client,
                            proxy=proxy.url) as client:
        for _ in range(3):
            await _list(client)
    assert proxy.tunnels >= 1
    assert len(tls_server.requests) == 3


@pytest.mark.usefixtures("proxy_env")
async def test_the_environment_proxy_is_ignored_by_default(
    tls_server: FakeSippet, ca: PrivateCA, proxy: TunnelProxy, api_key: str,
) -> None:
    """HTTPS_PROXY set, trust_env not: the proxy sees nothing."""
    async with SippetClient(api_key, base_url=tls_server.url, ssl=ca.client) as client:
        await _list(client)
    assert proxy.tunnels == 0
    assert len(tls_server.requests) == 1


@pytest.mark.usefixtures("proxy_env")
async def test_trust_env_uses_the_environment_proxy(
    tls_server: FakeSippet, ca: PrivateCA, proxy: TunnelProxy, api_key: str,
) -> None:
    """HTTPS_PROXY set and trust_env=True: requests are tunnelled through it."""
    async with SippetClient(api_key, base_url=tls_server.url, ssl=ca.client,
                            trust_env=True) as client:
        await _list(client)
    assert proxy.tunnels >= 1
    assert len(tls_server.requests) == 1


@pytest.mark.parametrize("how", ["proxy_auth", "url"])
async def test_proxy_credentials_are_sent_and_never_shown(
    tls_server: FakeSippet, ca: PrivateCA, api_key: str, how: str,
) -> None:
    """Credentials (in proxy_auth or in the URL) reach the proxy, never a repr or an error."""
    password = "pw-CANARY-4711"
    async with TunnelProxy(password=password) as guarded:
        if how == "url":
            options: dict[str, Any] = {
                "proxy": guarded.url.replace("http://", f"http://proxy-user:{password}@")}
        else:
            options = {"proxy": guarded.url, "proxy_auth": ("proxy-user", password)}
        async with SippetClient(api_key, base_url=tls_server.url, ssl=ca.client,
                                **options) as client:
            await _list(client)
            shown = [repr(client), repr(client.config), str(client.config)]
        assert guarded.tunnels >= 1
        wrong = dict(options)
        if how == "url":
            wrong["proxy"] = guarded.url.replace("http://", f"http://proxy-user:x{password}@")
        else:
            wrong["proxy_auth"] = ("proxy-user", f"x{password}")
        async with SippetClient(api_key, base_url=tls_server.url, ssl=ca.client,
                                retry=RetryPolicy(attempts=1), **wrong) as client:
            with pytest.raises(TransportError) as caught:
                await _list(client)
            shown += [repr(client.config), str(caught.value), repr(caught.value)]
    assert caught.value.sent is False  # the tunnel was refused: nothing reached Sippet
    assert not [text for text in shown if password in text]


# -- validation -----------------------------------------------------------------------


@pytest.mark.parametrize("options", [
    {"ssl": False},
    {"ssl": True},
    {"ssl": "/etc/ssl/certs/ca.pem"},
    {"proxy": "socks5://127.0.0.1:1080"},
    {"proxy": "http://"},
    {"proxy": "http://127.0.0.1:3128/path"},
    {"proxy": 3128},
    {"proxy_auth": ("user", "pw")},  # without a proxy
    {"proxy": "http://u:p@127.0.0.1:3128", "proxy_auth": ("user", "pw")},
    {"proxy": "http://127.0.0.1:3128", "proxy_auth": "user:pw"},
    {"proxy": "http://127.0.0.1:3128", "proxy_auth": ("us:er", "pw")},
    {"trust_env": "yes"},
], ids=repr)
def test_bad_network_options_are_usage_errors(options: dict[str, Any], api_key: str) -> None:
    """Each bad network option raises UsageError at construction, before any I/O."""
    with pytest.raises(UsageError):
        SippetClient(api_key, **options)


@pytest.mark.parametrize("options", [
    {"ssl": ssl.create_default_context()},
    {"proxy": "http://127.0.0.1:3128"},
    {"trust_env": True},
], ids=lambda o: next(iter(o)))
@pytest.mark.parametrize("owner", ["session", "transport"])
async def test_network_options_conflict_with_a_borrowed_session_or_transport(
    options: dict[str, Any], owner: str, api_key: str,
) -> None:
    """The session or transport given brings its own network settings: asking for both fails."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        given: dict[str, Any] = {owner: session if owner == "session" else _NullTransport()}
        with pytest.raises(UsageError, match=owner):
            SippetClient(api_key, **given, **options)


class _NullTransport:
    async def send(self, request: Any) -> Any:
        raise AssertionError("never called")

    async def aclose(self) -> None:
        return None


def test_the_config_shows_network_options_masked(api_key: str) -> None:
    """client.config shows the proxy without credentials and the password masked."""
    client = SippetClient(api_key, proxy="http://alice:s3cr%40t@proxy.test:3128")
    config = client.config
    assert isinstance(config, ClientConfig)
    assert config.proxy == "http://proxy.test:3128"
    assert config.proxy_auth is not None
    assert config.proxy_auth.login == "alice"
    assert config.proxy_auth.reveal() == "s3cr@t"
    assert "s3cr" not in repr(config)
    assert config.trust_env is False
