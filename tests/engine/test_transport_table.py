"""The transport's exception table: which aiohttp failures prove the request never left."""

from __future__ import annotations

import aiohttp
import pytest

from sippet_async import TransportError
from sippet_async._protocol import HttpRequest
from sippet_async._transport import translate, unwritten

REQUEST = HttpRequest("http://127.0.0.1:9/rpc/public/run", b"{}", {})


def _wrapped(cause: BaseException) -> aiohttp.ClientOSError:
    """What aiohttp raises when its body writer failed with ``cause``."""
    exc = aiohttp.ClientOSError(None, "the body could not be written")
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(("exc", "sent"), [
    # the writer refused to write on a closing connection: nothing left
    (_wrapped(aiohttp.ClientConnectionResetError("closing")), False),
    (aiohttp.ClientConnectionResetError("closing"), False),
    # any other OS error while writing or reading: bytes may have left
    (_wrapped(ConnectionResetError(104, "reset by peer")), True),
    (aiohttp.ClientOSError(104, "reset by peer"), True),
    (aiohttp.ServerDisconnectedError(), True),
], ids=["refused-write", "refused-write-bare", "reset-while-writing", "os-error",
        "server-disconnected"])
def test_only_a_refused_write_counts_as_not_sent(exc: BaseException, sent: bool) -> None:
    """A write aiohttp refused (closing transport) is sent=False; other resets stay sent."""
    assert unwritten(exc) is (not sent)
    translated = translate(exc, REQUEST)
    assert type(translated) is TransportError
    assert translated.sent is sent
