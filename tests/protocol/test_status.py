"""Status mapping of docs/protocol.md §12.1 and Retry-After parsing, with an injected clock."""

from __future__ import annotations

import email.utils
import time

import pytest

from sippet_async._errors import (
    AuthenticationError,
    ProtocolError,
    RateLimitError,
    ServerError,
    SippetError,
)
from sippet_async._protocol import (
    HttpResponse,
    decode_run,
    decode_validate,
    error_for_status,
    header,
    parse_retry_after,
)

NOW = 1_700_000_000.0  # an injected "now": 2023-11-14T22:13:20Z
HTML = b"<!DOCTYPE html><html><body><h1>Oops</h1></body></html>"


def _reply(status: int, body: bytes = b"", **headers: str) -> HttpResponse:
    return HttpResponse(status=status, headers=headers, body=body)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        ("0", 0.0),
        ("120", 120.0),
        ("1.5", 1.5),
        ("0.25", 0.25),
        ("  3  ", 3.0),
        ("007", 7.0),
        # HTTP-dates (RFC 9110 IMF-fixdate) relative to the injected now.
        (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
        (email.utils.formatdate(NOW + 3600, usegmt=True), 3600.0),
        (email.utils.formatdate(NOW, usegmt=True), 0.0),
        # A date in the past means "now".
        (email.utils.formatdate(NOW - 90, usegmt=True), 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Tue, 14 Nov 2023 22:14:20 GMT", 60.0),
    ],
)
def test_parse_retry_after_valid(value: str, seconds: float) -> None:
    """Delta-seconds (integer or decimal) and HTTP-dates give seconds to wait (§12.1)."""
    assert parse_retry_after(value, now=NOW) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "soon",
        "-5",
        "-0.5",
        "+5",
        "1_000",
        "1e3",
        "inf",
        "nan",
        "Infinity",
        "0x10",
        "5s",
        "5 seconds",
        "1.",
        ".5",
        "1,5",
        "Wed, 21 Oct 2015 07:28:00",  # no zone: not an HTTP-date
        "Wed, 32 Oct 2015 07:28:00 GMT",
        "Mon, 99 Foo 2020 99:99:99 GMT",
        "\x00",
    ],
)
def test_parse_retry_after_malformed_is_absent(value: str | None) -> None:
    """Absent, negative, non-numeric or zone-less values all count as absent (§12.1)."""
    assert parse_retry_after(value, now=NOW) is None


def test_parse_retry_after_defaults_to_the_wall_clock() -> None:
    """Without now=, a date an hour ahead gives about an hour (bounds only, no timing)."""
    value = email.utils.formatdate(time.time() + 3600, usegmt=True)
    seconds = parse_retry_after(value)
    assert seconds is not None
    assert 3000 < seconds <= 3600


def test_header_lookup_is_case_insensitive() -> None:
    """header() finds a name in any case and returns None when absent."""
    headers = {"Retry-After": "1", "x-ratelimit-remaining": "0"}
    assert header(headers, "retry-after") == "1"
    assert header(headers, "RETRY-AFTER") == "1"
    assert header(headers, "X-RateLimit-Remaining") == "0"
    assert header(headers, "Location") is None


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("body", [b"", HTML, b'{"success": false, "errors": []}', b"\xff\xfe"])
def test_401_403_are_authentication_errors(status: int, body: bytes) -> None:
    """401 and 403 are AuthenticationError whatever the body, with the status kept."""
    error = error_for_status("list_contacts", _reply(status, body))
    assert type(error) is AuthenticationError
    assert error.status == status
    assert f"HTTP {status}" in str(error)


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "2.5"}, 2.5),
        ({"retry-after": "4"}, 4.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
        ({}, None),
        ({"Retry-After": "later"}, None),
        ({"Retry-After": "-1"}, None),
    ],
)
def test_429_is_rate_limited_with_retry_after(
    headers: dict[str, str], retry_after: float | None
) -> None:
    """429 is RateLimitError carrying Retry-After in seconds, or None (§12.1)."""
    error = error_for_status("list_contacts", _reply(429, b"", **headers))
    assert type(error) is RateLimitError
    assert error.retry_after == retry_after
    assert "HTTP 429" in str(error)


@pytest.mark.parametrize("status", [500, 501, 502, 503, 504, 599])
@pytest.mark.parametrize("body", [b"", HTML, b'{"success": true, "data": []}'])
def test_5xx_are_server_errors(status: int, body: bytes) -> None:
    """Every 5xx is ServerError naming the status; the body (HTML or even valid) is ignored."""
    error = error_for_status("create_contact", _reply(status, body))
    assert type(error) is ServerError
    assert error.status == status
    assert error.retry_after is None
    assert f"HTTP {status}" in str(error)


def test_503_keeps_retry_after() -> None:
    """A 503 with Retry-After exposes it on the ServerError (§12.1)."""
    error = error_for_status("list_contacts", _reply(503, HTML, **{"Retry-After": "30"}))
    assert type(error) is ServerError
    assert error.retry_after == 30.0


@pytest.mark.parametrize("status", [300, 301, 302, 303, 307, 308])
def test_redirects_are_protocol_errors_naming_the_status(status: int) -> None:
    """Redirects are never followed: ProtocolError naming the status (§12.1)."""
    error = error_for_status(
        "list_contacts", _reply(status, b"", Location="https://evil.example/steal")
    )
    assert type(error) is ProtocolError
    assert error.status == status
    assert str(status) in str(error)
    assert "redirect" in str(error)


@pytest.mark.parametrize("status", [100, 201, 202, 204, 206, 400, 404, 405, 409, 418, 422, 451])
def test_other_statuses_are_protocol_errors_naming_the_status(status: int) -> None:
    """Any other non-200 status is a ProtocolError that names it (§12.1)."""
    error = error_for_status("list_contacts", _reply(status, HTML))
    assert type(error) is ProtocolError
    assert error.status == status
    assert str(status) in str(error)


def test_200_is_not_an_error() -> None:
    """error_for_status returns None for 200, whatever the body."""
    assert error_for_status("list_contacts", _reply(200, HTML)) is None


@pytest.mark.parametrize("status", [401, 403, 429, 500, 503, 302, 418])
def test_decoders_raise_the_status_error(status: int) -> None:
    """decode_run and decode_validate raise what error_for_status maps (§12.1, §7)."""
    response = _reply(status, b'{"success": true, "data": {}}', **{"Retry-After": "1"})
    expected = error_for_status("get_contact", response)
    assert expected is not None
    for decode in (decode_run, decode_validate):
        with pytest.raises(SippetError) as info:
            decode("get_contact", response)
        assert type(info.value) is type(expected)
        assert str(info.value) == str(expected)
