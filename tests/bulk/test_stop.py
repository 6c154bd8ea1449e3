"""Stop on what no retry can fix: the first such reply stops a bulk job; the rest is not sent."""

from __future__ import annotations

import pytest

from sippet_async import (
    ActionNotFoundError,
    AuthenticationError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    OutcomeUnknownError,
    ProtocolError,
    RateLimitError,
    ResponseTooLargeError,
    ServerError,
    TransportError,
    TransportTimeoutError,
    UsageError,
)
from sippet_async._errors import is_fatal


@pytest.mark.parametrize(("error", "fatal"), [
    (AuthenticationError("k", status=401), True),
    (AuthenticationError("k", status=403), True),
    (AuthenticationError("an authentication_failed item in a 200 envelope"), True),
    (ActionNotFoundError("create_contactz", ()), True),
    (ProtocolError("redirect", status=301), True),
    (ProtocolError("redirect", status=307), True),
    (ProtocolError("no endpoint", status=404), True),
    (ProtocolError("no endpoint", status=405), True),
    (ProtocolError("bad envelope", status=200), False),
    (ProtocolError("odd status", status=418), False),
    (ProtocolError("no status"), False),
    (ResponseTooLargeError("big", status=200), False),
    (InvalidInputError("create_contact", ()), False),
    (ForbiddenError("update_contact", ()), False),
    (NotFoundError("get_contact", ()), False),
    (RateLimitError("slow down", retry_after=1.0), False),
    (ServerError("down", status=503), False),
    (TransportError("refused", sent=False), False),
    (TransportTimeoutError("slow"), False),
    (OutcomeUnknownError("maybe", action="create_contact"), False),
    (UsageError("bad argument"), False),
    (ValueError("not ours"), False),
])
def test_the_rule_of_what_no_retry_can_fix(error: BaseException, fatal: bool) -> None:
    """Errors about the key, the URL or the action are fatal; errors about one item are not."""
    assert is_fatal(error) is fatal
