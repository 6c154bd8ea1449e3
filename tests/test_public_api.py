"""The public surface of ``sippet_async`` is pinned: adding or removing a name is deliberate.

When you export a new name, add it to ``PUBLIC`` here in the same change.
"""

from __future__ import annotations

import inspect
import re

import sippet_async

PUBLIC = [
    "ActionNotFoundError",
    "AiohttpTransport",
    "ApiKey",
    "AuthenticationError",
    "BreakerEvent",
    "BreakerPolicy",
    "BulkJob",
    "BulkReport",
    "Call",
    "CallEndEvent",
    "CallStartEvent",
    "CallWorker",
    "CallsResource",
    "ClientClosedError",
    "ClientConfig",
    "Contact",
    "ContactsResource",
    "Counters",
    "CreateCall",
    "CreateContact",
    "ErrorItem",
    "ForbiddenError",
    "Hooks",
    "InvalidInputError",
    "KeysetPage",
    "NotFoundError",
    "Observer",
    "OffsetPage",
    "Outcome",
    "OutcomeUnknownError",
    "Page",
    "PauseEvent",
    "ProtocolError",
    "Pushback",
    "RateLimit",
    "RateLimitError",
    "RateLimiter",
    "RecordIterator",
    "RequestEvent",
    "RequestKeys",
    "ResponseEvent",
    "ResponseTooLargeError",
    "ResultTypeError",
    "ResumeToken",
    "RetryEvent",
    "RetryPolicy",
    "RpcError",
    "RunResult",
    "ServerError",
    "ServerUnreachableError",
    "SharesPauses",
    "SippetClient",
    "SippetError",
    "TLSVerificationError",
    "Timeouts",
    "Transport",
    "TransportError",
    "TransportTimeoutError",
    "UpdateContact",
    "UsageError",
    "ValidationResult",
    "__version__",
]


def test_all_is_pinned() -> None:
    """__all__ is exactly the pinned list, in the same order."""
    assert sippet_async.__all__ == PUBLIC


def test_all_is_sorted_without_duplicates() -> None:
    """__all__ is in plain sort order (ruff's RUF022 is off for this) with no repeats."""
    assert sippet_async.__all__ == sorted(sippet_async.__all__)
    assert len(set(sippet_async.__all__)) == len(sippet_async.__all__)


def test_every_public_name_is_importable() -> None:
    """``from sippet_async import *`` gives exactly __all__, each name resolvable."""
    namespace: dict[str, object] = {}
    exec("from sippet_async import *", namespace)
    namespace.pop("__builtins__")
    assert sorted(namespace) == sorted(PUBLIC)
    for name in PUBLIC:
        assert getattr(sippet_async, name) is namespace[name]


def test_every_public_name_is_documented() -> None:
    """Each exported class or function has its own non-empty docstring (not an inherited one)."""
    undocumented = []
    for name in PUBLIC:
        if name == "__version__":
            continue
        obj = getattr(sippet_async, name)
        own = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
        if not (isinstance(own, str) and own.strip()):
            undocumented.append(name)
    assert undocumented == []


def test_version_is_a_release_string() -> None:
    """__version__ is a PEP 440-style release string."""
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?(?:\.dev\d+)?", sippet_async.__version__)


def test_package_has_a_docstring_with_an_example() -> None:
    """The package docstring introduces the client with an example."""
    assert sippet_async.__doc__ is not None
    assert "SippetClient" in sippet_async.__doc__
